//! Sustained ingest into `FileStorage` against raw `write` + `fdatasync` of
//! the same bytes in the same batch sizes, side by side in one run.
//!
//! For each batch size: a round of N raw appends (each the exact bytes of the
//! frame FileStorage writes for that batch, `write` then `fdatasync`, one file)
//! and a round of N `FileStorage::append` calls (64 KiB files, default
//! configuration), alternated over R rounds; rates are totals over all rounds.
//! The disk of a shared machine stalls now and then for a whole round of one
//! side, which swings the totals; so each row also prints the median over the
//! rounds of the ratio of a round to the raw round just before it, and the
//! target line uses that median (both are printed).
//! Rows: one source below the cap (new files start in spares the helper thread
//! made ahead), one source at the cap (every new file is the evicted oldest
//! one, written over in place), and batches spanning three sources (one frame
//! and one `fdatasync` per source directory; the raw side writes the same bytes
//! with one `fdatasync`), below the cap and at it (there a new file may start
//! in the evicted oldest file of another source: a rename and an `fsync` of
//! both directories, shared by the batch). The target (>= 0.8x raw) applies
//! to the single-source rows. Run:
//!
//! ```text
//! cargo bench --bench file
//! # SPOOL_BENCH_BATCHES=N (100), SPOOL_BENCH_ROUNDS=R (20), SPOOL_BENCH_DIR=/path,
//! # SPOOL_BENCH_ROWS=3,5 (only these rows), SPOOL_BENCH_VERBOSE=1 (every round)
//! ```

use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::{
    FileStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage, run_encoded_len,
};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn run_for(key: SensorKey, first: u32, records: &[u8]) -> Run<'_> {
    Run {
        info: RunInfo {
            key,
            kind: RecordKind::Tsd,
            first_seq: first,
            count: (records.len() / 4) as u16,
            meta: RunMeta {
                base_time: first as u64,
                interval: 1,
            },
        },
        records,
    }
}

fn main() {
    let batches: usize = std::env::var("SPOOL_BENCH_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let rounds: usize = std::env::var("SPOOL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let base: PathBuf = std::env::var("SPOOL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let root = base.join(format!("sensor-spool-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    println!(
        "file storage ingest vs raw write+fdatasync: {batches} batches x {rounds} rounds per size, dir {}",
        root.display()
    );
    println!(
        "{:>12} {:>8} {:>14} {:>14} {:>12} {:>12} {:>7} {:>7}",
        "batch(rec)",
        "bytes/b",
        "raw MB/s",
        "file MB/s",
        "raw us/b",
        "file us/b",
        "ratio",
        "median"
    );
    let records = vec![0x5Au8; 4 * 8000];
    let mut worst: f64 = f64::MAX;
    // (records per run, sources per batch, disk limit)
    let rows: [(usize, u8, Option<u64>); 8] = [
        (64, 1, None),
        (256, 1, None),
        (1024, 1, None),
        (4096, 1, None),
        (8000, 1, None),
        (4096, 1, Some(1 << 20)),
        (1024, 3, None),
        (1024, 3, Some(1 << 20)),
    ];
    // SPOOL_BENCH_ROWS=0,5: only these rows (0-based), for profiling one case.
    let only: Option<Vec<usize>> = std::env::var("SPOOL_BENCH_ROWS")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect());
    for (row, &(n, sources, cap)) in rows.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&row)) {
            continue;
        }
        let frame = 4 + run_encoded_len(RecordKind::Tsd, n) + 4;
        let bytes = vec![0xA5u8; frame * sources as usize];
        let (mut t_raw, mut t_file) = (Duration::ZERO, Duration::ZERO);
        let mut round_ratios = Vec::with_capacity(rounds);
        let dir = root.join(format!("fs-{row}"));
        let mut cfg = FileConfig::new(&dir);
        cfg.free_space_reserve = 0;
        if let Some(c) = cap {
            cfg.disk_limit = c;
        }
        let mut s = FileStorage::new(cfg).unwrap();
        s.mount().unwrap();
        let mut seq = 0u32;
        let append = |s: &mut FileStorage, seq: &mut u32| {
            let runs: Vec<Run<'_>> = (0..sources)
                .map(|src| run_for(SensorKey { source: src, id: 1 }, *seq, &records[..4 * n]))
                .collect();
            s.append(runs.as_slice(), |_| {}).unwrap();
            *seq = seq.wrapping_add(n as u32);
        };
        if cap.is_some() {
            // Fill up to the cap first (the first eviction): every new file then
            // starts in the oldest file, reused. (The disk use then stays within one
            // file of the limit, not necessarily within two frames of it.)
            while s.file_stats().files_evicted == 0 {
                append(&mut s, &mut seq);
            }
        }
        for round in 0..rounds {
            // Raw: one file, append + fdatasync per batch.
            let p = root.join(format!("raw-{row}-{round}"));
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .unwrap();
            let t = Instant::now();
            for _ in 0..batches {
                f.write_all(&bytes).unwrap();
                f.sync_data().unwrap();
            }
            let r_raw = t.elapsed();
            t_raw += r_raw;
            drop(f);
            fs::remove_file(&p).unwrap();
            // FileStorage.
            let t = Instant::now();
            for _ in 0..batches {
                append(&mut s, &mut seq);
            }
            let r_file = t.elapsed();
            t_file += r_file;
            round_ratios.push(r_raw.as_secs_f64() / r_file.as_secs_f64());
            if std::env::var_os("SPOOL_BENCH_VERBOSE").is_some() {
                println!(
                    "    round {round}: raw {:.1} us/b, file {:.1} us/b, ratio {:.2}",
                    r_raw.as_secs_f64() * 1e6 / batches as f64,
                    r_file.as_secs_f64() * 1e6 / batches as f64,
                    r_raw.as_secs_f64() / r_file.as_secs_f64()
                );
            }
        }
        let total = (batches * rounds) as f64;
        let mb = total * bytes.len() as f64 / 1e6;
        let raw = mb / t_raw.as_secs_f64();
        let file = mb / t_file.as_secs_f64();
        let ratio = file / raw;
        round_ratios.sort_by(f64::total_cmp);
        let median = round_ratios[round_ratios.len() / 2];
        let label = match (cap, sources) {
            (Some(_), 1) => format!("{n} at cap"),
            (Some(_), k) => format!("{k}x{n} cap"),
            (None, 1) => format!("{n}"),
            (None, k) => format!("{k}x{n} src"),
        };
        if sources == 1 {
            worst = worst.min(median);
        }
        println!(
            "{:>12} {:>8} {:>14.2} {:>14.2} {:>12.1} {:>12.1} {:>6.2}x {:>6.2}x",
            label,
            bytes.len(),
            raw,
            file,
            t_raw.as_secs_f64() * 1e6 / total,
            t_file.as_secs_f64() * 1e6 / total,
            ratio,
            median
        );
        let fst = s.file_stats();
        println!(
            "{:>12} files started {} (spares made ahead {} of {}), evicted {} (reused {}), fdatasync {}, dir fsync {}",
            "",
            fst.files_created,
            fst.spares_ahead,
            fst.spares_created,
            fst.files_evicted,
            fst.files_reused,
            fst.syncs,
            fst.dir_syncs
        );
    }
    println!(
        "worst median round ratio file/raw over the single-source rows (below and at the cap): {worst:.2}x (target >= 0.80x)"
    );
    let _ = fs::remove_dir_all(&root);
}
