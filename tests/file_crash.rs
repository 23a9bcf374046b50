//! Crash test: a child process (this test binary, re-run with
//! `SENSOR_SPOOL_CRASH_CHILD` set) appends and acknowledges at full speed and
//! logs, fsync'd, every batch `append` reported durable and every
//! acknowledgement `ack` reported durable. The parent SIGKILLs it at random
//! moments (at least 200 times, `SPOOL_CRASH_KILLS` to change), and after each
//! kill a fresh `FileStorage` recovers and is checked against the log:
//! - every logged acknowledgement is recovered (no acknowledged record is
//!   delivered again: an uploader resumes from the recovered mark);
//! - every logged flushed record at or after the mark is delivered, in order,
//!   contiguously (zero flushed records lost);
//! - every delivered record has the content it was written with (zero
//!   corrupted records), and nothing is invented.
//!
//! `SPOOL_CRASH_SEED` replays a run.

mod file_common;

use file_common::*;
use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::{FileStorage, SensorKey, Storage};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SENSOR_SPOOL_CRASH_CHILD";

fn sensors() -> Vec<SensorKey> {
    let mut v = Vec::new();
    for source in [0u8, 1, 2, 9] {
        for id in [2u32, 3, 10] {
            v.push(SensorKey { source, id });
        }
    }
    v
}

fn cfg(dir: &Path) -> FileConfig {
    let mut c = FileConfig::new(dir.join("store"));
    // Small files: many file creations (tmp + rename + dir fsync) per run.
    c.file_size = 8 * 1024;
    c.free_space_reserve = 0;
    c
}

/// What the log says: flushed ranges and acknowledgement marks per sensor.
#[derive(Default, Debug)]
struct Log {
    flushed: BTreeMap<SensorKey, Vec<(u32, u32)>>,
    acked: BTreeMap<SensorKey, u32>,
    lines: usize,
}

fn read_log(path: &Path) -> Log {
    let mut log = Log::default();
    let Ok(text) = fs::read_to_string(path) else {
        return log;
    };
    // Only complete lines count (a kill may cut the last one).
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    for line in complete.lines() {
        // Every line ends with " ." and is written with one `write`; a line a
        // kill cut short (then ended by the next child) is not a claim.
        let Some(line) = line.strip_suffix(" .") else {
            continue;
        };
        let f: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| f[i].parse::<u32>().unwrap();
        let key = SensorKey {
            source: n(1) as u8,
            id: n(2),
        };
        match f[0] {
            "F" => log.flushed.entry(key).or_default().push((n(3), n(4))),
            "A" => {
                let e = log.acked.entry(key).or_insert(0);
                *e = (*e).max(n(3));
            }
            other => panic!("bad log line {other:?}"),
        }
        log.lines += 1;
    }
    log
}

/// The child: mount (recovering whatever the last kill left), then write and
/// acknowledge forever.
fn child(dir: PathBuf, seed: u64) -> ! {
    let mut s = FileStorage::new(cfg(&dir)).unwrap();
    s.mount().unwrap();
    let rec = recover_all(&mut s);
    let log_path = dir.join("log");
    let log = read_log(&log_path);
    let mut logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    // A line cut by the last kill: end it so the next line starts clean.
    let len = logf.metadata().unwrap().len();
    if len > 0 && !fs::read(&log_path).unwrap().ends_with(b"\n") {
        logf.write_all(b"\n").unwrap();
        logf.sync_data().unwrap();
    }
    let keys = sensors();
    let mut m = Model::default();
    let mut acked: BTreeMap<SensorKey, u32> = BTreeMap::new();
    for k in &keys {
        let stored = rec
            .runs
            .get(k)
            .and_then(|v| v.last())
            .map_or(0, |r| r.end_seq());
        let logged = log
            .flushed
            .get(k)
            .and_then(|v| v.iter().map(|r| r.0 + r.1).max())
            .unwrap_or(0);
        let end = stored.max(logged);
        m.sensors.insert(*k, (end, end));
        acked.insert(*k, rec.acks.get(k).copied().unwrap_or(0));
    }
    let mut rng = Rng(seed | 1);
    let mut out = [0u8; 256];
    loop {
        let b = m.batch(&mut rng, &keys, 48);
        s.append(runs_of(&b).as_slice(), |_| {}).unwrap();
        let mut line = String::new();
        for r in &b {
            line.push_str(&format!(
                "F {} {} {} {} .\n",
                r.info.key.source, r.info.key.id, r.info.first_seq, r.info.count
            ));
        }
        logf.write_all(line.as_bytes()).unwrap();
        logf.sync_data().unwrap();
        m.commit(&b);
        if rng.below(3) == 0 {
            // Upload some records of one sensor and acknowledge them.
            let k = keys[rng.below(keys.len() as u64) as usize];
            let from = acked[&k];
            if let Some(ro) = s.read(k, from, &mut out).unwrap() {
                let upto = ro.first + ro.count as u32;
                s.ack(k, upto, |_| {}).unwrap();
                let line = format!("A {} {} {} .\n", k.source, k.id, upto);
                logf.write_all(line.as_bytes()).unwrap();
                logf.sync_data().unwrap();
                acked.insert(k, upto);
            }
        }
    }
}

/// The command that runs this test binary as the child. Under user-mode emulation (the
/// armhf CI stage runs the tests through `qemu-arm`), the binary is a foreign executable
/// the kernel cannot start directly: `SPOOL_TEST_RUNNER` (e.g. `qemu-arm -L
/// /usr/arm-linux-gnueabihf`) names the emulator to start it with, as cargo's target
/// runner does for the parent. SIGKILL of the emulator kills the child as SIGKILL of the
/// child would.
fn child_command(exe: &Path) -> Command {
    let runner = std::env::var("SPOOL_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut c = Command::new(emulator);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

#[test]
fn crash_child() {
    // Only does something when spawned by `sigkill_at_random_moments`.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let seed = std::env::var("SPOOL_CRASH_CHILD_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        child(PathBuf::from(dir), seed);
    }
}

/// Checks a recovered store against the log. Returns records delivered and
/// what the mount repaired (torn tails cut, `.tmp` leftovers deleted).
fn check(dir: &Path) -> (usize, u32, u32) {
    let log = read_log(&dir.join("log"));
    let mut s = FileStorage::new(cfg(dir)).unwrap();
    s.mount().unwrap();
    let rec = recover_all(&mut s);
    let mut checked = 0;
    for k in sensors() {
        let logged_ack = log.acked.get(&k).copied().unwrap_or(0);
        let mark = rec.acks.get(&k).copied().unwrap_or(0);
        assert!(
            mark >= logged_ack,
            "{k:?}: durable ack {logged_ack} lost (recovered mark {mark})"
        );
        // An uploader resumes at the recovered mark.
        let got = read_all(&mut s, k, mark);
        assert!(
            got.iter().all(|&q| q >= logged_ack),
            "{k:?}: acknowledged record delivered again"
        );
        for w in got.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{k:?}: gap or disorder in delivery");
        }
        if let Some(&f) = got.first() {
            assert_eq!(f, mark, "{k:?}: records after the mark missing");
        }
        let end = got.last().map_or(mark, |&l| l + 1);
        for &(first, count) in log.flushed.get(&k).map(|v| v.as_slice()).unwrap_or(&[]) {
            let last = first + count;
            assert!(
                last <= mark || last <= end,
                "{k:?}: flushed records {first}..{last} lost (delivered up to {end}, mark {mark})"
            );
        }
        checked += got.len();
    }
    let f = s.file_stats();
    assert_eq!(f.quarantined, 0, "a kill never damages a whole file");
    (checked, f.truncated_files, f.files_deleted)
}

#[test]
fn sigkill_at_random_moments() {
    let kills: u32 = std::env::var("SPOOL_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("SPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("file crash: seed {seed} (SPOOL_CRASH_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let mut tmp = TempDir::new("crash");
    let mut records = 0usize;
    let mut max_lines = 0usize;
    let mut done = 0;
    let (mut torn, mut leftovers) = (0, 0);
    while done < kills {
        // A fresh directory every 50 kills keeps mount times short.
        if done % 50 == 0 && done > 0 {
            tmp = TempDir::new("crash");
        }
        let dir = tmp.path().to_path_buf();
        let errf = fs::File::create(dir.join(format!("stderr-{done}"))).unwrap();
        let mut c = child_command(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env("SPOOL_CRASH_CHILD_SEED", rng.next().to_string())
            .stdout(Stdio::null())
            .stderr(errf)
            .spawn()
            .unwrap();
        let wait = Duration::from_micros(5_000 + rng.below(120_000));
        std::thread::sleep(wait);
        if let Some(st) = c.try_wait().unwrap() {
            let err = fs::read_to_string(dir.join(format!("stderr-{done}"))).unwrap_or_default();
            panic!("child exited by itself ({st}): {err}");
        }
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        done += 1;
        let (n, cut, tmp_removed) = check(&dir);
        records = n;
        torn += cut;
        leftovers += tmp_removed;
        max_lines = max_lines.max(read_log(&dir.join("log")).lines);
    }
    eprintln!(
        "file crash: {done} kills (SIGKILL) in {:.1} s, 0 acknowledged records delivered again, 0 flushed records lost, 0 corrupted; last store held {records} unacknowledged records, largest log {max_lines} lines; recovery cut {torn} torn tails and deleted {leftovers} leftover files",
        t0.elapsed().as_secs_f64()
    );
    assert!(done >= kills);
}
