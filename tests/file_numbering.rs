//! File numbers and names (fuzz target `file_spool`, input
//! `fuzz/corpus/file_spool/seed-mark-lost-seq-near-max`, kept in
//! `fuzz/known-failures` until this fix): header numbers come from valid
//! headers only, names are labels that never name an existing file.

mod file_common;

use file_common::*;
use sensor_spool::storage::file::source_dir_name;
use sensor_spool::storage::{FileStorage, SensorKey, Storage};

/// A forged file named at exactly the highest number mount accepts
/// (`u64::MAX - 0xFFFF`), with a damaged header, is emptied into a spare at
/// mount. Before the fix it set the next file number one above that bound: the
/// store's next file (here the one holding an acknowledgement mark) got that
/// number, and the next mount took it as damage and quarantined it, mark and
/// records lost without any eviction. Now the store keeps numbering from its
/// valid headers: everything written comes back, nothing is quarantined.
#[test]
fn a_file_named_at_the_bound_costs_nothing() {
    let d = TempDir::new("bound");
    let dir = d.path().join(source_dir_name(9));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ffffffffffff0000.spl"), [0xFFu8; 40]).unwrap();
    let cfg = small_cfg(d.path());
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    let key = SensorKey { source: 9, id: 3 };
    s.append(&[OwnedRun::new(key, 0, 10).run()], |_| panic!())
        .unwrap();
    s.ack(key, 4, |_| panic!()).unwrap();
    // A second source: its file numbers stay small as well.
    let other = SensorKey { source: 0, id: 2 };
    s.append(&[OwnedRun::new(other, 0, 10).run()], |_| panic!())
        .unwrap();
    assert!(s.stats().head_seq < 1 << 32, "{}", s.stats().head_seq);
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(s.file_stats().quarantined, 0, "{:?}", s.file_stats());
    let r = recover_all(&mut s);
    assert_eq!(r.acks.get(&key), Some(&4), "mark lost");
    assert_eq!(read_all(&mut s, key, 4), (4..10).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, other, 0), (0..10).collect::<Vec<_>>());
}

/// Names are labels: spares and data files named above every header number
/// (left by an earlier life of the store) are never named again, in any
/// directory (a reused file keeps its name when it moves to another source's
/// directory, where a rename would replace a file of that name). The store
/// starts files in every source many times over; every file it made has a name
/// of its own and everything reads back after a remount.
#[test]
fn new_spare_names_skip_names_in_use() {
    let d = TempDir::new("names");
    let cfg = small_cfg(d.path());
    // Empty spares named 2..=40 in two directories (no header anywhere: the
    // next header number is 1).
    for (src, range) in [(0u8, 2u64..=20), (1, 21..=40)] {
        let dir = d.path().join(source_dir_name(src));
        std::fs::create_dir_all(&dir).unwrap();
        for n in range {
            std::fs::write(dir.join(format!("{n:016x}.spl")), b"").unwrap();
        }
    }
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    assert_eq!(s.file_stats().spares, 39);
    let mut m = Model::default();
    let mut rng = Rng(5);
    let keys = keys();
    let mut batches = 0;
    while s.file_stats().files < 60 {
        let b = m.batch(&mut rng, &keys, 12);
        s.append(runs_of(&b).as_slice(), |_| panic!("no eviction"))
            .unwrap();
        m.commit(&b);
        batches += 1;
    }
    let f = s.file_stats();
    assert!(f.spares_created > 0, "{f:?}");
    // Every name once, across directories.
    let mut names: Vec<String> = Vec::new();
    for e in walk(d.path()) {
        names.push(e.file_name().unwrap().to_string_lossy().into_owned());
    }
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "a name given twice");
    drop(s);
    let mut s = open_std(&cfg);
    check_exact(&mut s, &m);
    eprintln!(
        "file numbering: {batches} batches, {} files, {n} names, all distinct",
        f.files
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            v.extend(walk(&e));
        } else {
            v.push(e);
        }
    }
    v
}
