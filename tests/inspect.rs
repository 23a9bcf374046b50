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
    // original; read-only, the tool reports it and changes nothing.
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
        out.contains("mount rewrites it (skipped read-only)"),
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
