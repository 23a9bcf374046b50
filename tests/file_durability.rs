//! Durability of what the file store reports: a batch never evicts what it
//! wrote itself; every directory entry durable state depends on is made
//! durable (fault layer with directory entries durable only after an `fsync`
//! of their directory, journaling and independent variants); a spool directory
//! removed while the store runs is detected before anything is reported
//! durable, re-created, and what vanished is reported through `on_evict`.

mod file_common;

use file_common::*;
use sensor_spool::storage::file::FileError;
use sensor_spool::storage::{FileStorage, RunInfo, SensorKey, Storage, StorageError};
use std::collections::BTreeMap;

const A: SensorKey = SensorKey { source: 0, id: 2 };
const B: SensorKey = SensorKey { source: 1, id: 2 };
const C: SensorKey = SensorKey { source: 2, id: 2 };

/// Issue "Crash truth on Linux files", item 2: in a multi-source batch the
/// eviction for a later source took the file an earlier frame of the same
/// batch had just been appended to (the oldest file of the store, the current
/// file of a rarely written source): `append` returned `Ok`, the frame's
/// `fdatasync` was skipped (its handle gone) and its records were reported
/// evicted by the very append that stored them. Now the eviction takes the
/// oldest file of another source (B's oldest file), and A's records stay.
#[test]
fn a_batch_never_evicts_a_file_it_wrote_to() {
    let d = TempDir::new("self-evict");
    let mut cfg = small_cfg(d.path());
    cfg.file_size = 512;
    cfg.disk_limit = 1100;
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    // A1: one frame of 5 records (72 bytes), the oldest file.
    s.append(&[OwnedRun::new(A, 0, 5).run()], |_| panic!("no eviction"))
        .unwrap();
    // B1, B2: 4 frames of 20 records each (468 bytes): at the cap, B2 full.
    let mut nb = 0;
    for _ in 0..8 {
        s.append(&[OwnedRun::new(B, nb, 20).run()], |_| panic!("no eviction"))
            .unwrap();
        nb += 20;
    }
    let f = s.file_stats();
    assert_eq!((f.files, f.bytes), (3, 72 + 468 + 468), "{f:?}");
    // A's frame goes into A1 (room left), B's needs a new file: an eviction.
    let mut evicted: Vec<RunInfo> = Vec::new();
    let batch = [OwnedRun::new(A, 5, 5), OwnedRun::new(B, nb, 20)];
    s.append(runs_of(&batch).as_slice(), |r| evicted.push(r))
        .unwrap();
    assert!(
        evicted.iter().all(|r| r.key != A),
        "the append evicted the file it had just written A's frame to: {evicted:?}"
    );
    // B's oldest file went instead: B 0..80, reported.
    let gone: u32 = evicted.iter().map(|r| r.count as u32).sum();
    assert_eq!(gone, 80, "{evicted:?}");
    assert!(evicted.iter().all(|r| r.key == B && r.end_seq() <= 80));
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(read_all(&mut s, A, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (80..nb + 20).collect::<Vec<_>>());
}

/// Item 2, the case where no room can be made without evicting a file the
/// batch wrote to: three sources each needing a file under a limit of two
/// files. The append fails cleanly with `TooLarge` (`FileError::BatchTooWide`),
/// nothing of the batch is visible, before or after a remount, and batches over
/// fewer sources still go in. (Before: `Ok`, with A's new frame evicted by the
/// same append.)
#[test]
fn a_batch_too_wide_for_the_limit_fails_cleanly() {
    let d = TempDir::new("too-wide");
    let mut cfg = small_cfg(d.path());
    cfg.file_size = 512;
    cfg.disk_limit = 1024;
    let mut s = FileStorage::new(cfg.clone()).unwrap();
    s.mount().unwrap();
    for i in 0..4 {
        s.append(&[OwnedRun::new(A, i * 20, 20).run()], |_| panic!())
            .unwrap();
        s.append(&[OwnedRun::new(B, i * 20, 20).run()], |_| panic!())
            .unwrap();
    }
    assert_eq!(s.file_stats().files, 2);
    let mut evicted: BTreeMap<SensorKey, u32> = BTreeMap::new();
    let batch = [
        OwnedRun::new(A, 80, 20),
        OwnedRun::new(B, 80, 20),
        OwnedRun::new(C, 0, 20),
    ];
    let r = s.append(runs_of(&batch).as_slice(), |r| {
        let e = evicted.entry(r.key).or_default();
        *e = (*e).max(r.end_seq());
    });
    assert_eq!(r, Err(StorageError::TooLarge));
    assert_eq!(s.last_error(), Some(FileError::BatchTooWide));
    // Nothing of the batch is visible; what was evicted on the way is reported.
    let a_from = evicted.get(&A).copied().unwrap_or(0);
    let b_from = evicted.get(&B).copied().unwrap_or(0);
    assert_eq!(read_all(&mut s, A, 0), (a_from..80).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (b_from..80).collect::<Vec<_>>());
    assert!(read_all(&mut s, C, 0).is_empty());
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(read_all(&mut s, A, 0), (a_from..80).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s, B, 0), (b_from..80).collect::<Vec<_>>());
    assert!(read_all(&mut s, C, 0).is_empty());
    // The same records over fewer sources go in.
    s.append(runs_of(&batch[..2]).as_slice(), |_| {}).unwrap();
    s.append(runs_of(&batch[2..]).as_slice(), |_| {}).unwrap();
    assert_eq!(read_all(&mut s, C, 0), (0..20).collect::<Vec<_>>());
}
