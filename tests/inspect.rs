//! `spool-inspect` (feature `cli`) and `storage::inspect` on media written by the
//! library with known content: the summary figures and the exported rows are
//! what was written and acknowledged; damage is found at its byte offset; the
//! input is never changed; truncated and hostile images never crash the tool.

use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::inspect::{
    self, FileFate, FrameStatus, ImageFlash, Item, ProblemKind, ReadOnlyFs,
};
use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{
    FileStorage, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const W: usize = 8;
const E: usize = 1024;
const SECTORS: usize = 24;
/// 2026-11-22T00:00:00Z in ms.
const T0: u64 = 1_795_305_600_000;
const TSD: SensorKey = SensorKey { source: 0, id: 7 };
const EVT: SensorKey = SensorKey { source: 2, id: 9 };

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spool-inspect"))
        .args(args)
        .output()
        .expect("run spool-inspect")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An exported CSV with its rows in (source, sensor, seq) order (the tool
/// writes them in the order it reads the log: sensors interleave).
fn sorted_csv(o: &Output) -> String {
    let s = stdout(o);
    let mut lines = s.lines();
    let head = lines.next().unwrap_or_default().to_string();
    let mut rows: Vec<(Vec<u64>, &str)> = lines
        .map(|l| {
            let k = l.split(',').take(3).map(|x| x.parse().unwrap()).collect();
            (k, l)
        })
        .collect();
    rows.sort();
    let mut out = head + "\n";
    for (_, l) in rows {
        out += l;
        out += "\n";
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("spool-inspect-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

/// One expected row: (source, sensor, seq, time ms, value, kind).
type Row = (u8, u32, u32, u64, u32, &'static str);

fn tsd_value(i: u32) -> u32 {
    1000 + i * 7
}

fn evt_time_s(i: u32) -> u32 {
    1_795_305_700 + i * 5
}

/// Writes the known content into `s`: 100 TSD records of 0:7 (1 s apart, in
/// runs of 10) and 30 EVT records of 2:9 (in runs of 3), then acknowledges
/// 0:7 before 40 and 2:9 before 12. Returns every row written.
fn write_known<S: Storage>(s: &mut S) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in 0..10u32 {
        let mut recs = Vec::new();
        for i in b * 10..b * 10 + 10 {
            recs.extend_from_slice(&tsd_value(i).to_le_bytes());
            rows.push((0, 7, i, T0 + i as u64 * 1000, tsd_value(i), "tsd"));
        }
        let info = RunInfo {
            key: TSD,
            kind: RecordKind::Tsd,
            first_seq: b * 10,
            count: 10,
            meta: RunMeta {
                base_time: T0 + b as u64 * 10_000,
                interval: 1000,
            },
        };
        s.append(
            &[Run {
                info,
                records: &recs,
            }],
            |_| {},
        )
        .unwrap();
        // An EVT run between the TSD runs.
        let mut ev = Vec::new();
        for i in b * 3..b * 3 + 3 {
            ev.extend_from_slice(&evt_time_s(i).to_le_bytes());
            ev.extend_from_slice(&(i * 3).to_le_bytes());
            rows.push((2, 9, i, evt_time_s(i) as u64 * 1000, i * 3, "evt"));
        }
        let info = RunInfo {
            key: EVT,
            kind: RecordKind::Evt,
            first_seq: b * 3,
            count: 3,
            meta: RunMeta::default(),
        };
        s.append(&[Run { info, records: &ev }], |_| {}).unwrap();
    }
    s.ack(TSD, 40, |_| {}).unwrap();
    s.ack(EVT, 12, |_| {}).unwrap();
    rows
}

fn acked(r: &Row) -> bool {
    (r.0 == 0 && r.2 < 40) || (r.0 == 2 && r.2 < 12)
}

/// A flash image holding the known content.
fn flash_image() -> (Vec<u8>, Vec<Row>) {
    let mut s: NorFlashStorage<MockFlash<W, E>> =
        NorFlashStorage::new(MockFlash::new(SECTORS, 1)).unwrap();
    s.mount().unwrap();
    let rows = write_known(&mut s);
    (s.flash().image().to_vec(), rows)
}

fn iso(ms: u64) -> String {
    // Only times on 2026-11-22 occur in these tests.
    let s = (ms - T0) / 1000;
    format!(
        "2026-11-22T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

fn csv_rows(rows: &[Row], keep: impl Fn(&Row) -> bool) -> String {
    let mut sorted: Vec<&Row> = rows.iter().filter(|r| keep(r)).collect();
    sorted.sort_by_key(|r| (r.0, r.1, r.2));
    let mut s = String::from("source,sensor,seq,time,value,kind\n");
    for r in sorted {
        s += &format!("{},{},{},{},{},{}\n", r.0, r.1, r.2, iso(r.3), r.4, r.5);
    }
    s
}

#[test]
fn flash_summary_and_exports_match_what_was_written() {
    let (img, rows) = flash_image();
    let path = tmp("flash.img");
    std::fs::write(&path, &img).unwrap();
    let p = path.to_str().unwrap();
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();

    let o = tool(&[p]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{} {}",
        String::from_utf8_lossy(&o.stderr),
        stdout(&o)
    );
    let out = stdout(&o);
    assert!(
        out.contains("records:       130 held, 52 acknowledged, 78 to deliver; 2 sensors"),
        "{out}"
    );
    assert!(out.contains("24 sectors x 1024 B, write size 8 B"), "{out}");
    assert!(out.contains("frames:        22 good, 0 damaged"), "{out}");
    assert!(
        out.contains("2 acknowledgement marks (2 sensors with a mark)"),
        "{out}"
    );
    // Per sensor: held, acked, sequence range, time range, no gaps.
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("0:7 "))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&f[..5], ["0:7", "tsd", "100", "40", "0..=99"], "{line}");
    assert_eq!(f[5], iso(T0));
    assert_eq!(f[7], iso(T0 + 99_000));
    assert_eq!(&f[8..], ["0", "0", "0"], "{line}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("2:9 "))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&f[..5], ["2:9", "evt", "30", "12", "0..=29"], "{line}");

    // Exports: the unacknowledged rows, or all with --all, exactly.
    let o = tool(&[p, "--export", "csv"]);
    assert_eq!(sorted_csv(&o), csv_rows(&rows, |r| !acked(r)));
    let o = tool(&[p, "--export", "csv", "--all"]);
    assert_eq!(sorted_csv(&o), csv_rows(&rows, |_| true));
    // Filters: one sensor, a time window [since, until).
    let since = evt_time_s(20) as u64 * 1000;
    let until = evt_time_s(25) as u64 * 1000;
    let o = tool(&[
        p,
        "--export",
        "csv",
        "--sensor",
        "2:9",
        "--since",
        &since.to_string(),
        "--until",
        &iso(until),
    ]);
    assert_eq!(
        sorted_csv(&o),
        csv_rows(&rows, |r| r.0 == 2 && r.3 >= since && r.3 < until)
    );
    // JSON: same rows, typed.
    let o = tool(&[p, "--export", "json", "--time", "ms"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = v.as_array().unwrap();
    let want: Vec<&Row> = rows.iter().filter(|r| !acked(r)).collect();
    assert_eq!(got.len(), want.len());
    for r in want {
        let hit = got.iter().any(|g| {
            g["source"] == r.0
                && g["sensor"] == r.1
                && g["seq"] == r.2
                && g["time"] == r.3
                && g["value"] == r.4
                && g["kind"] == r.5
        });
        assert!(hit, "row {r:?} not exported");
    }
    // Frame listing names every frame.
    let o = tool(&[p, "--frames"]);
    assert_eq!(stdout(&o).matches(" good ").count(), 22);
    // --check: clean.
    let o = tool(&[p, "--check"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("check: 0 problems, 0 damage"));

    // Never written to.
    assert_eq!(std::fs::read(&path).unwrap(), img);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_damaged_frame_is_reported_at_its_offset_and_costs_its_records() {
    let (mut img, rows) = flash_image();
    // The library's own walk says where the third frame is.
    let mut frames = Vec::new();
    {
        let mut s: NorFlashStorage<ImageFlash<'_, W, E>> =
            NorFlashStorage::new(ImageFlash::new(&img)).unwrap();
        s.mount().unwrap();
        s.inspect(|i| {
            if let Item::Frame(f) = i {
                frames.push(f);
            }
        })
        .unwrap();
    }
    let third = frames[2]; // TSD records 10..20
    img[third.offset as usize + 30] ^= 0x10;
    let path = tmp("damaged.img");
    std::fs::write(&path, &img).unwrap();
    let p = path.to_str().unwrap();
    let o = tool(&[p, "--check"]);
    assert_eq!(o.status.code(), Some(1), "damage exits 1");
    let out = stdout(&o);
    let want = format!(
        "DAMAGE offset {} (0x{:x}), {} B: frame CRC mismatch",
        third.offset, third.offset, third.len
    );
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("check: 1 problems, 1 damage"), "{out}");
    assert!(out.contains("frames:        21 good, 1 damaged"), "{out}");
    // The damaged frame's 10 records: a gap of 10, counted as damaged.
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("0:7 "))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&f[..5], ["0:7", "tsd", "90", "30", "0..=99"], "{line}");
    assert_eq!(&f[8..], ["1", "10", "10"], "{line}");
    let o = tool(&[p, "--export", "csv", "--all", "--sensor", "7"]);
    assert_eq!(
        sorted_csv(&o),
        csv_rows(&rows, |r| r.0 == 0 && !(10..20).contains(&r.2))
    );
    assert_eq!(std::fs::read(&path).unwrap(), img);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn geometry_comes_from_the_image_or_the_flags() {
    let (img, _) = flash_image();
    assert_eq!(inspect::guess_sector_size(&img), Some(E));
    assert_eq!(inspect::guess_sector_size(&[0xFF; 4096]), None);
    let path = tmp("geometry.img");
    std::fs::write(&path, &img).unwrap();
    let p = path.to_str().unwrap();
    let o = tool(&[p, "--sector-size", "1k", "--write-size", "8"]);
    assert!(stdout(&o).contains("130 held"));
    // A wrong sector size: a different (wrong) log, reported without a crash;
    // --check finds the frames that run past where it thinks sectors end.
    let o = tool(&[p, "--sector-size", "4096", "--write-size", "8", "--check"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stdout(&o));
    assert!(!stdout(&o).contains("130 held"), "{}", stdout(&o));
    let o = tool(&[p, "--sector-size", "1000"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn truncated_and_hostile_images_never_crash_the_tool() {
    let (img, _) = flash_image();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("cut mid-sector".into(), img[..E * 5 + 333].to_vec()),
        ("cut mid-log".into(), img[..E * 3].to_vec()),
        ("zeros".into(), vec![0; E * 8]),
        ("empty".into(), Vec::new()),
        ("tiny".into(), vec![0xFF; 17]),
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for k in 0..6 {
        // Random bit flips all over a real image, and pure noise.
        let mut d = img.clone();
        for _ in 0..(50 << k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % d.len();
            d[i] ^= 1 << (x >> 60 & 7);
        }
        cases.push((format!("flips {k}"), d));
    }
    let noise: Vec<u8> = (0..E * 8)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    cases.push(("noise".into(), noise));
    let path = tmp("hostile.img");
    for (name, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let p = path.to_str().unwrap();
        for args in [
            vec![p, "--check", "--frames"],
            vec![
                p,
                "--sector-size",
                "1024",
                "--write-size",
                "8",
                "--check",
                "--frames",
            ],
            vec![p, "--sector-size", "1024", "--export", "json", "--all"],
        ] {
            let o = tool(&args);
            let code = o.status.code();
            assert!(
                matches!(code, Some(0..=2)),
                "{name} {args:?}: {code:?} {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: input changed"
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// Every path under `root` with its bytes and modification time.
fn tree(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
                m.insert(e.path(), (Vec::new(), md.modified().unwrap()));
            } else {
                m.insert(
                    e.path(),
                    (std::fs::read(e.path()).unwrap(), md.modified().unwrap()),
                );
            }
        }
    }
    m
}

#[test]
fn spool_directory_read_only_with_known_content() {
    let root = tmp("dir");
    let mut cfg = FileConfig::new(&root);
    cfg.background_spares = false;
    cfg.free_space_reserve = 0;
    cfg.file_size = 1024;
    cfg.disk_limit = 1 << 20;
    let mut s = FileStorage::new(cfg).unwrap();
    s.mount().unwrap();
    let rows = write_known(&mut s);
    drop(s);
    let p = root.to_str().unwrap();
    let snap = tree(&root);

    let o = tool(&[p, "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("records:       130 held, 52 acknowledged, 78 to deliver; 2 sensors"),
        "{out}"
    );
    assert!(out.contains("spool directory (FileStorage)"), "{out}");
    let o = tool(&[p, "--export", "csv"]);
    assert_eq!(sorted_csv(&o), csv_rows(&rows, |r| !acked(r)));
    let o = tool(&[p, "--export", "csv", "--all"]);
    assert_eq!(sorted_csv(&o), csv_rows(&rows, |_| true));
    assert_eq!(tree(&root), snap, "the directory tree changed");

    // Damage in the middle of a file: mount would rewrite it and quarantine the
    // original; the tool does so in memory only, reports it and changes nothing.
    let mut files = Vec::new();
    inspect::inspect_dir(&mut ReadOnlyFs, &root, |i| {
        if let Item::File(f) = i {
            files.push(f);
        }
    })
    .unwrap();
    let victim = files
        .iter()
        .find(|f| f.fate == FileFate::Data && f.source == Some(0) && f.valid > 300)
        .expect("a TSD data file")
        .clone();
    let mut b = std::fs::read(&victim.path).unwrap();
    b[20 + 30] ^= 1; // inside the file's first frame
    std::fs::write(&victim.path, &b).unwrap();
    let snap = tree(&root);
    let o = tool(&[p, "--check", "--frames"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("damaged bytes between good frames"), "{out}");
    assert!(
        out.contains("mount rewrites it from its good frames (here in memory)"),
        "{out}"
    );
    assert_eq!(tree(&root), snap, "the directory tree changed");
    assert!(!root.join("quarantine").exists());
    // The library's walk: the damaged frame's offset, status and fate.
    let mut found = false;
    inspect::inspect_dir(&mut ReadOnlyFs, &root, |i| match i {
        Item::Frame(f) if f.offset == 20 && f.status == FrameStatus::BadCrc => found = true,
        Item::Problem(pr) if pr.kind == ProblemKind::MiddleDamage => assert_eq!(pr.offset, 20),
        _ => {}
    })
    .unwrap();
    assert!(found);

    // A copy of a data file under another name: one number twice (mount would
    // quarantine the later one in name order); reported, nothing changed.
    let clean = files
        .iter()
        .find(|f| f.fate == FileFate::Data && f.path != victim.path && f.source == Some(2))
        .expect("an EVT data file");
    std::fs::copy(
        &clean.path,
        clean.path.with_file_name("00000000000000ff.spl"),
    )
    .unwrap();
    let snap = tree(&root);
    let o = tool(&[p, "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "00000000000000ff.spl offset 4 (0x4), 8 B: two sectors, or files, with one number"
        ),
        "{}",
        stdout(&o)
    );
    assert_eq!(tree(&root), snap, "the directory tree changed");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn records_written_twice_are_exported_once_as_storage_read_serves_them() {
    let mut s: NorFlashStorage<MockFlash<W, E>> =
        NorFlashStorage::new(MockFlash::new(SECTORS, 1)).unwrap();
    s.mount().unwrap();
    let run = |first: u32| {
        let recs: Vec<u8> = (first..first + 10).flat_map(tsd_value_bytes).collect();
        (
            RunInfo {
                key: TSD,
                kind: RecordKind::Tsd,
                first_seq: first,
                count: 10,
                meta: RunMeta {
                    base_time: T0 + first as u64 * 1000,
                    interval: 1000,
                },
            },
            recs,
        )
    };
    // A batch retried after a failed program leaves its records twice.
    for first in [0, 0, 10, 5] {
        let (info, recs) = run(first);
        s.append(
            &[Run {
                info,
                records: &recs,
            }],
            |_| {},
        )
        .unwrap();
    }
    // What Storage::read serves, record by record.
    let mut served = Vec::new();
    let mut seq = 0u32;
    let mut out = [0u8; 4096];
    while let Some(ro) = s.read(TSD, seq, &mut out).unwrap() {
        for k in 0..ro.count {
            served.push(ro.first + k as u32);
        }
        seq = ro.first + ro.count as u32;
    }
    assert_eq!(served, (0..20).collect::<Vec<_>>());
    let path = tmp("twice.img");
    std::fs::write(&path, s.flash().image()).unwrap();
    // One sector written: the sector size cannot be told from the image.
    let o = tool(&[path.to_str().unwrap(), "--sector-size", "1024"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("records:       20 held, 0 acknowledged, 20 to deliver; 1 sensors")
    );
    let o = tool(&[
        path.to_str().unwrap(),
        "--export",
        "csv",
        "--all",
        "--sector-size",
        "1024",
    ]);
    let rows: Vec<(u8, u32, u32, u64, u32, &str)> = (0..20)
        .map(|i| (0, 7, i, T0 + i as u64 * 1000, tsd_value(i), "tsd"))
        .collect();
    assert_eq!(sorted_csv(&o), csv_rows(&rows, |_| true));
    let o = tool(&[path.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the sector size is not on the image"
    );
    let _ = std::fs::remove_file(&path);
}

fn tsd_value_bytes(i: u32) -> [u8; 4] {
    tsd_value(i).to_le_bytes()
}

// ---- spool directories with damaged files: the export is the library's delivery ----

/// The sensors of [`write_many`]: (key, kind, acknowledged before).
const MANY: [(SensorKey, RecordKind, u32); 6] = [
    (SensorKey { source: 0, id: 1 }, RecordKind::Tsd, 20),
    (SensorKey { source: 0, id: 2 }, RecordKind::Tsd, 0),
    (SensorKey { source: 0, id: 3 }, RecordKind::Tsd, 35),
    (SensorKey { source: 0, id: 5 }, RecordKind::Evt, 10),
    (SensorKey { source: 1, id: 4 }, RecordKind::Tsd, 30),
    (SensorKey { source: 2, id: 6 }, RecordKind::Evt, 0),
];

/// Record `i` of sensor `k` of [`MANY`]: (time ms, value).
fn many_record(k: usize, i: u32) -> (u64, u32) {
    match MANY[k].1 {
        RecordKind::Tsd => (
            T0 + k as u64 * 100 + i as u64 * 1000,
            ((k as u32) << 16) | (i * 3),
        ),
        RecordKind::Evt => (
            evt_time_s(i) as u64 * 1000 + k as u64 * 1000,
            ((k as u32) << 20) | i,
        ),
    }
}

fn many_row(k: usize, i: u32) -> Row {
    let (t, v) = many_record(k, i);
    let kind = match MANY[k].1 {
        RecordKind::Tsd => "tsd",
        RecordKind::Evt => "evt",
    };
    (MANY[k].0.source, MANY[k].0.id, i, t, v, kind)
}

/// Writes 12 rounds of the [`MANY`] sensors, 5 records a run, two batches a
/// round (sensors 0, 1, 4, then 2, 3, 5: several sensors and sources per
/// batch, several frames per file), then the acknowledgements. Returns every
/// row written.
fn write_many<S: Storage>(s: &mut S) -> Vec<Row> {
    let mut rows = Vec::new();
    for round in 0..12u32 {
        for group in [[0usize, 1, 4], [2, 3, 5]] {
            let mut bufs: Vec<(RunInfo, Vec<u8>)> = Vec::new();
            for k in group {
                let first = round * 5;
                let mut recs = Vec::new();
                for i in first..first + 5 {
                    let (t, v) = many_record(k, i);
                    if MANY[k].1 == RecordKind::Evt {
                        recs.extend_from_slice(&((t / 1000) as u32).to_le_bytes());
                    }
                    recs.extend_from_slice(&v.to_le_bytes());
                    rows.push(many_row(k, i));
                }
                let meta = match MANY[k].1 {
                    RecordKind::Tsd => RunMeta {
                        base_time: many_record(k, first).0,
                        interval: 1000,
                    },
                    RecordKind::Evt => RunMeta::default(),
                };
                let info = RunInfo {
                    key: MANY[k].0,
                    kind: MANY[k].1,
                    first_seq: first,
                    count: 5,
                    meta,
                };
                bufs.push((info, recs));
            }
            let runs: Vec<Run<'_>> = bufs
                .iter()
                .map(|(info, records)| Run {
                    info: *info,
                    records,
                })
                .collect();
            s.append(&runs[..], |_| {}).unwrap();
        }
    }
    for (key, _, upto) in MANY {
        if upto > 0 {
            s.ack(key, upto, |_| {}).unwrap();
        }
    }
    rows
}

fn many_cfg(root: &Path) -> FileConfig {
    let mut cfg = FileConfig::new(root);
    cfg.background_spares = false;
    cfg.free_space_reserve = 0;
    cfg.file_size = 1024;
    cfg.disk_limit = 1 << 20;
    cfg
}

/// A spool directory written by the library with the [`MANY`] sensors.
fn many_dir(name: &str) -> (PathBuf, Vec<Row>) {
    let root = tmp(name);
    let mut s = FileStorage::new(many_cfg(&root)).unwrap();
    s.mount().unwrap();
    let rows = write_many(&mut s);
    drop(s);
    (root, rows)
}

/// One data file of a directory as the library's walk sees it: its report
/// and its frames, each with the rows of its runs.
struct WalkedFile {
    file: inspect::FileReport,
    frames: Vec<(inspect::FrameReport, Vec<Row>)>,
}

/// The library's walk of a clean directory: every data file with its frames.
fn walk(root: &Path, rows: &[Row]) -> Vec<WalkedFile> {
    let mut files: Vec<WalkedFile> = Vec::new();
    inspect::inspect_dir(&mut ReadOnlyFs, root, |i| match i {
        Item::File(f) => files.push(WalkedFile {
            file: f,
            frames: Vec::new(),
        }),
        Item::Frame(f) => files.last_mut().unwrap().frames.push((f, Vec::new())),
        Item::Run(r) => {
            let i = &r.info;
            let held: Vec<Row> = rows
                .iter()
                .filter(|w| {
                    w.0 == i.key.source
                        && w.1 == i.key.id
                        && w.2 >= i.first_seq
                        && w.2 < i.first_seq + i.count as u32
                })
                .copied()
                .collect();
            assert_eq!(held.len(), i.count as usize);
            let f = files.last_mut().unwrap();
            f.frames.last_mut().unwrap().1.extend(held);
        }
        _ => {}
    })
    .unwrap();
    files.retain(|f| f.file.fate == FileFate::Data && !f.frames.is_empty());
    files
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The model: what the library delivers when it really mounts (and repairs)
/// a copy of `root` with the configuration it was written with, then reads
/// every sensor `recover` names from sequence number 0 on with
/// `Storage::read`. Returns the rows and the acknowledgement marks (the last
/// one `recover` reports per sensor), and whether the mount moved anything to
/// `quarantine/`.
fn library_delivery(root: &Path) -> (Vec<Row>, BTreeMap<(u8, u32), u32>, bool) {
    let copy = PathBuf::from(format!("{}-model", root.display()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(root, &copy);
    let mut s = FileStorage::new(many_cfg(&copy)).unwrap();
    s.mount().unwrap();
    let mut keys = BTreeMap::new();
    let mut marks = BTreeMap::new();
    s.recover(|e| match e {
        sensor_spool::storage::LogEntry::Run(r) => {
            keys.insert((r.key.source, r.key.id), r.key);
        }
        sensor_spool::storage::LogEntry::Ack { key, upto } => {
            marks.insert((key.source, key.id), upto);
        }
        _ => {}
    })
    .unwrap();
    let mut rows = Vec::new();
    let mut out = [0u8; 4096];
    for key in keys.values() {
        let mut seq = 0u32;
        while let Some(ro) = s.read(*key, seq, &mut out).unwrap() {
            let size = ro.run.kind.record_size();
            for k in 0..ro.count {
                let i = ro.first + k as u32;
                let b = &out[k * size..(k + 1) * size];
                let w = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
                rows.push(match ro.run.kind {
                    RecordKind::Tsd => (
                        key.source,
                        key.id,
                        i,
                        ro.run.meta.base_time
                            + (i - ro.run.first_seq) as u64 * ro.run.meta.interval as u64,
                        w(0),
                        "tsd",
                    ),
                    RecordKind::Evt => (key.source, key.id, i, w(0) as u64 * 1000, w(4), "evt"),
                });
            }
            seq = ro.first + ro.count as u32;
        }
    }
    let repaired = copy.join("quarantine").exists();
    let _ = std::fs::remove_dir_all(&copy);
    (rows, marks, repaired)
}

/// Runs the exporter on `root` (all records, the unacknowledged ones, one
/// sensor in a time window, JSON) and asserts each is exactly the library's
/// delivery, that the delivery is `expected` when given (what was written
/// less what the damage cost, with every acknowledgement mark), and that the
/// directory (names, bytes, modification times) is unchanged. Returns the
/// delivery.
fn assert_export_is_library_delivery(root: &Path, expected: Option<&[Row]>) -> Vec<Row> {
    let snap = tree(root);
    let (model, marks, _) = library_delivery(root);
    if let Some(expected) = expected {
        let mut want: Vec<Row> = expected.to_vec();
        want.sort_by_key(|r| (r.0, r.1, r.2));
        let mut got = model.clone();
        got.sort_by_key(|r| (r.0, r.1, r.2));
        assert_eq!(got, want, "the library's delivery");
        for (key, _, upto) in MANY {
            assert_eq!(
                marks.get(&(key.source, key.id)).copied(),
                (upto > 0).then_some(upto)
            );
        }
    }
    let p = root.to_str().unwrap();
    let o = tool(&[p, "--export", "csv", "--all"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        sorted_csv(&o),
        csv_rows(&model, |_| true),
        "--export csv --all"
    );
    let unacked = |r: &Row| marks.get(&(r.0, r.1)).is_none_or(|&u| r.2 >= u);
    let o = tool(&[p, "--export", "csv"]);
    assert_eq!(sorted_csv(&o), csv_rows(&model, unacked), "--export csv");
    let (since, until) = (T0 + 12_000, T0 + 41_000);
    let o = tool(&[
        p,
        "--export",
        "csv",
        "--all",
        "--sensor",
        "0:1",
        "--since",
        &iso(since),
        "--until",
        &until.to_string(),
    ]);
    assert_eq!(
        sorted_csv(&o),
        csv_rows(&model, |r| r.0 == 0
            && r.1 == 1
            && r.3 >= since
            && r.3 < until)
    );
    let o = tool(&[p, "--export", "json", "--time", "ms"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut json: Vec<(u64, u64, u64, u64, u64, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let n = |k: &str| g[k].as_u64().unwrap();
            let kind = g["kind"].as_str().unwrap().to_string();
            (
                n("source"),
                n("sensor"),
                n("seq"),
                n("time"),
                n("value"),
                kind,
            )
        })
        .collect();
    json.sort();
    let mut jwant: Vec<_> = model
        .iter()
        .filter(|r| unacked(r))
        .map(|r| {
            (
                r.0 as u64,
                r.1 as u64,
                r.2 as u64,
                r.3,
                r.4 as u64,
                r.5.to_string(),
            )
        })
        .collect();
    jwant.sort();
    assert_eq!(json, jwant, "--export json");
    // The summary counts the same records.
    let o = tool(&[p]);
    let held = format!("records:       {} held, ", model.len());
    assert!(stdout(&o).contains(&held), "{}", stdout(&o));
    assert_eq!(tree(root), snap, "the directory tree changed");
    assert!(!root.join("quarantine").exists());
    model
}

/// Rows of `files`' frames picked by `lost`: what the damage costs.
fn rows_but(rows: &[Row], lost: &[&[Row]]) -> Vec<Row> {
    rows.iter()
        .filter(|r| !lost.iter().any(|l| l.contains(r)))
        .copied()
        .collect()
}

/// A file of source 0 with at least `n` frames, all batches (no marks).
fn batch_file(files: &[WalkedFile], n: usize) -> &WalkedFile {
    files
        .iter()
        .find(|f| {
            f.file.source == Some(0)
                && f.frames.len() >= n
                && f.frames
                    .iter()
                    .all(|(fr, rows)| fr.tag != 0xAC && !rows.is_empty())
        })
        .expect("a data file of batches")
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x40;
    std::fs::write(path, &b).unwrap();
}

#[test]
fn a_frame_damaged_between_good_frames_costs_only_its_records() {
    let (root, rows) = many_dir("middle");
    let files = walk(&root, &rows);
    let v = batch_file(&files, 3);
    let (fr, lost) = &v.frames[1];
    flip(&v.file.path, fr.offset + fr.len as u64 / 2);
    let model = assert_export_is_library_delivery(&root, Some(&rows_but(&rows, &[lost])));
    // The records of the good frames after the damaged one are delivered.
    for r in &v.frames[2].1 {
        assert!(model.contains(r), "{r:?} not delivered");
    }
    // The library's own mount repairs it (rewrite + quarantine); the tool's
    // listing and check name it, and its summary counts what it cost.
    assert!(
        library_delivery(&root).2,
        "the real mount quarantined nothing"
    );
    let o = tool(&[root.to_str().unwrap(), "--check", "--frames"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("mount rewrites it from its good frames"),
        "{out}"
    );
    assert!(out.contains("1 rewritten from their good frames"), "{out}");
    assert!(out.contains(", 1 damaged,"), "{out}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn damage_to_a_files_first_or_last_frame_exports_what_the_library_delivers() {
    // First frame: the frames after it are good, so mount rewrites the file.
    let (root, rows) = many_dir("first");
    let files = walk(&root, &rows);
    let v = batch_file(&files, 2);
    let (fr, lost) = &v.frames[0];
    flip(&v.file.path, fr.offset + 5);
    let model = assert_export_is_library_delivery(&root, Some(&rows_but(&rows, &[lost])));
    assert!(v.frames[1].1.iter().all(|r| model.contains(r)));
    assert!(library_delivery(&root).2);
    let _ = std::fs::remove_dir_all(&root);

    // Last frame: nothing good after it, so mount takes it for a torn write:
    // the file is kept and the frame never read.
    let (root, rows) = many_dir("last");
    let files = walk(&root, &rows);
    let v = batch_file(&files, 2);
    let (fr, lost) = v.frames.last().unwrap();
    flip(&v.file.path, fr.offset + fr.len as u64 - 6);
    assert_export_is_library_delivery(&root, Some(&rows_but(&rows, &[lost])));
    assert!(!library_delivery(&root).2);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn truncated_files_export_what_the_library_delivers() {
    let (root, rows) = many_dir("truncated");
    let files = walk(&root, &rows);
    // One file cut inside its second frame: that frame and the rest are lost.
    let v = batch_file(&files, 3);
    let (fr, _) = &v.frames[1];
    let cut = fr.offset + fr.len as u64 / 2;
    let lost: Vec<Row> = v.frames[1..].iter().flat_map(|f| f.1.clone()).collect();
    let b = std::fs::read(&v.file.path).unwrap();
    std::fs::write(&v.file.path, &b[..cut as usize]).unwrap();
    // Another cut inside its header: no frame can be checked; mount makes it
    // a spare (a write: emptied), read-only here.
    let w = files
        .iter()
        .find(|f| f.file.path != v.file.path && f.frames.iter().all(|x| x.0.tag != 0xAC))
        .unwrap();
    let lost2: Vec<Row> = w.frames.iter().flat_map(|f| f.1.clone()).collect();
    let b = std::fs::read(&w.file.path).unwrap();
    std::fs::write(&w.file.path, &b[..10]).unwrap();
    let model = assert_export_is_library_delivery(&root, Some(&rows_but(&rows, &[&lost, &lost2])));
    assert!(v.frames[0].1.iter().all(|r| model.contains(r)));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_overlay_mount_repairs_in_memory_as_a_real_mount_does() {
    use sensor_spool::storage::LogEntry;
    use sensor_spool::storage::file::FileSystem;
    use sensor_spool::storage::inspect::OverlayFs;
    let (root, rows) = many_dir("overlay");
    let files = walk(&root, &rows);
    let v = batch_file(&files, 3);
    let (fr, _) = &v.frames[1];
    flip(&v.file.path, fr.offset + fr.len as u64 / 2);
    let snap = tree(&root);
    let mut cfg = many_cfg(&root);
    // As the tool mounts: any file size, no disk limit.
    cfg.file_size = sensor_spool::storage::file::MAX_FILE_SIZE;
    cfg.disk_limit = u64::MAX / 2;
    let mut fs = OverlayFs::new();
    let mut s = FileStorage::with_fs(fs.clone(), cfg).unwrap();
    s.mount().unwrap();
    let mut log: Vec<LogEntry> = Vec::new();
    s.recover(|e| log.push(e)).unwrap();
    // Through the overlay: the original moved to quarantine/, a clean copy in
    // its place. On disk: nothing changed.
    let q = fs.list_dir(&root.join("quarantine")).unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    let dir = v.file.path.parent().unwrap();
    let name = v.file.path.file_name().unwrap().to_str().unwrap();
    assert!(fs.list_dir(dir).unwrap().iter().any(|e| e.name == name));
    assert_eq!(tree(&root), snap);
    assert!(!root.join("quarantine").exists());
    // The same log as a real mount of a copy.
    let copy = PathBuf::from(format!("{}-real", root.display()));
    copy_tree(&root, &copy);
    let mut real = FileStorage::new(many_cfg(&copy)).unwrap();
    real.mount().unwrap();
    let mut want: Vec<LogEntry> = Vec::new();
    real.recover(|e| want.push(e)).unwrap();
    assert_eq!(log, want);
    assert_eq!(s.stats().bad_frames, real.stats().bad_frames);
    assert!(copy.join("quarantine").exists());
    let _ = std::fs::remove_dir_all(&copy);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn random_damage_in_a_spool_directory_exports_what_the_library_delivers() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for k in 0..6 {
        let (root, _) = many_dir(&format!("random-{k}"));
        let mut files: Vec<PathBuf> = tree(&root)
            .into_keys()
            .filter(|p| p.extension().is_some_and(|e| e == "spl"))
            .collect();
        files.sort();
        // 1, 3, 9, ... bytes flipped anywhere in the data files (headers too).
        for _ in 0..3u32.pow(k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = &files[(x >> 32) as usize % files.len()];
            let len = std::fs::metadata(f).unwrap().len();
            if len > 0 {
                flip(f, (x & 0xFFFF_FFFF) % len);
            }
        }
        let o = tool(&[root.to_str().unwrap(), "--check", "--frames"]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stdout(&o));
        assert_export_is_library_delivery(&root, None);
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn a_rewrite_cut_before_its_last_rename_exports_what_the_library_delivers() {
    // Mount's repair of a damaged file writes the clean copy as `.tmp`, moves
    // the original to quarantine/, then renames the copy into place. Cut
    // before that rename, the next mount finishes it (a rename: a write).
    let (root, rows) = many_dir("tmp");
    let files = walk(&root, &rows);
    let v = batch_file(&files, 2);
    let tmp_path = v.file.path.with_extension("tmp");
    std::fs::rename(&v.file.path, &tmp_path).unwrap();
    let model = assert_export_is_library_delivery(&root, Some(&rows));
    assert!(
        v.frames
            .iter()
            .flat_map(|f| &f.1)
            .all(|r| model.contains(r))
    );
    assert!(tmp_path.exists() && !v.file.path.exists());
    let _ = std::fs::remove_dir_all(&root);
}
