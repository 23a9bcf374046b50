//! Fault injection through the filesystem layer: `ENOSPC` / `EIO` on write
//! (whole or short), `EIO` on `fdatasync`, on `rename` (new file), on the
//! directory `fsync` and on file creation. Every failure reaches the caller;
//! the store stays consistent (nothing of the failed batch is visible), the
//! caller still holds the batch and the retry succeeds; a fresh mount sees
//! exactly the batches that were reported durable.

mod file_common;

use file_common::*;
use sensor_spool::storage::file::{FileError, FileOp};
use sensor_spool::storage::{FileStorage, Storage};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Write,
    ShortWrite,
    Sync,
    Rename,
    SyncDir,
    Create,
}

fn arm(ffs: &FaultFs, kind: Kind, after: u32, errno: i32) {
    let f = Fault {
        after,
        errno,
        short: matches!(kind, Kind::ShortWrite),
        sticky: false,
    };
    let mut p = ffs.plan.lock().unwrap();
    match kind {
        Kind::Write | Kind::ShortWrite => p.write = Some(f),
        Kind::Sync => p.sync = Some(f),
        Kind::Rename => p.rename = Some(f),
        Kind::SyncDir => p.sync_dir = Some(f),
        Kind::Create => p.create = Some(f),
    }
}

fn expected_op(kind: Kind) -> FileOp {
    match kind {
        Kind::Write | Kind::ShortWrite => FileOp::Write,
        Kind::Sync => FileOp::Sync,
        Kind::Rename => FileOp::Rename,
        Kind::SyncDir => FileOp::SyncDir,
        Kind::Create => FileOp::Open,
    }
}

/// Runs a workload with one fault armed at each of a range of operation
/// indices; checks consistency after every failure and after a remount.
fn sweep(kind: Kind, errno: i32) -> u32 {
    let mut failures = 0;
    // Writes and syncs happen every batch, renames and directory syncs only
    // when a file is created (every few batches).
    let (points, batches) = match kind {
        Kind::Write | Kind::ShortWrite | Kind::Sync => (0..12u32, 14),
        Kind::Rename | Kind::SyncDir | Kind::Create => (0..3u32, 60),
    };
    for after in points {
        let d = TempDir::new("fault");
        let mut cfg = small_cfg(d.path());
        cfg.file_size = 1024;
        let ffs = FaultFs::default();
        let mut s = FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap();
        s.mount().unwrap();
        let mut m = Model::default();
        let mut rng = Rng(1000 + after as u64);
        let keys = keys();
        arm(&ffs, kind, after, errno);
        let mut failed_here = false;
        for _ in 0..batches {
            let b = m.batch(&mut rng, &keys, 4);
            match s.append(runs_of(&b).as_slice(), |_| panic!("no eviction")) {
                Ok(()) => m.commit(&b),
                Err(e) => {
                    failed_here = true;
                    failures += 1;
                    // A full disk is told apart; every other failure is a device error.
                    let want = if errno == ENOSPC {
                        sensor_spool::storage::StorageError::NoSpace
                    } else {
                        sensor_spool::storage::StorageError::Flash(
                            sensor_spool::storage::FlashErrorKind::Other,
                        )
                    };
                    assert_eq!(e, want, "{kind:?}");
                    match s.last_error() {
                        Some(FileError::Io {
                            op, errno: Some(n), ..
                        }) => {
                            assert_eq!(op, expected_op(kind), "{kind:?}");
                            assert_eq!(n, errno);
                        }
                        other => panic!("{kind:?}: last_error {other:?}"),
                    }
                    if errno == ENOSPC {
                        assert!(s.last_error().unwrap().is_no_space());
                    }
                    // Consistent: nothing of the failed batch is visible.
                    check_exact(&mut s, &m);
                    // The caller kept the batch: the retry succeeds.
                    s.append(runs_of(&b).as_slice(), |_| panic!("no eviction"))
                        .unwrap();
                    m.commit(&b);
                    check_exact(&mut s, &m);
                }
            }
        }
        assert!(failed_here, "{kind:?} after {after}: fault never hit");
        let fst = s.file_stats();
        assert!(fst.io_errors >= 1);
        drop(s);
        // A fresh mount sees exactly what was reported durable.
        let mut s = open_std(&cfg);
        check_exact(&mut s, &m);
        assert_eq!(s.file_stats().truncated_files, 0, "{kind:?} after {after}");
    }
    failures
}

#[test]
fn enospc_on_write() {
    let n = sweep(Kind::Write, ENOSPC);
    eprintln!("file faults: ENOSPC on write: {n} failures injected");
}

#[test]
fn eio_on_write() {
    let n = sweep(Kind::Write, EIO);
    eprintln!("file faults: EIO on write: {n} failures injected");
}

#[test]
fn short_write_then_eio() {
    let n = sweep(Kind::ShortWrite, EIO);
    eprintln!("file faults: short write + EIO: {n} failures injected");
}

#[test]
fn eio_on_fdatasync() {
    let n = sweep(Kind::Sync, EIO);
    eprintln!("file faults: EIO on fdatasync: {n} failures injected");
}

/// Renames happen at mount (quarantine, rewrite of a file damaged in the
/// middle). A failing rename costs that file for this mount only, is
/// reported through `last_error` and the counters, and the next mount repairs.
#[test]
fn eio_on_rename_at_mount() {
    let d = TempDir::new("frename");
    let cfg = small_cfg(d.path());
    let key = sensor_spool::storage::SensorKey { source: 0, id: 2 };
    let other = sensor_spool::storage::SensorKey { source: 1, id: 4 };
    let mut s = open_std(&cfg);
    for i in 0..4u32 {
        s.append(&[OwnedRun::new(key, i * 10, 10).run()], |_| {})
            .unwrap();
        s.append(&[OwnedRun::new(other, i * 10, 10).run()], |_| {})
            .unwrap();
    }
    let host = s
        .file_paths()
        .into_iter()
        .find(|p| p.starts_with(d.path().join("host")))
        .unwrap();
    drop(s);
    let mut img = std::fs::read(&host).unwrap();
    img[20 + 72 + 30] ^= 1; // second frame (72 bytes each)
    std::fs::write(&host, &img).unwrap();
    let ffs = FaultFs::default();
    arm(&ffs, Kind::Rename, 0, EIO);
    let mut s = FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap();
    s.mount().unwrap();
    match s.last_error() {
        Some(FileError::Io {
            op: FileOp::Rename,
            errno: Some(EIO),
            ..
        }) => {}
        other => panic!("last_error {other:?}"),
    }
    assert!(s.file_stats().io_errors >= 1);
    assert_eq!(read_all(&mut s, other, 0), (0..40).collect::<Vec<_>>());
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(s.file_stats().quarantined, 1);
    let want: Vec<u32> = (0..10).chain(20..40).collect();
    assert_eq!(read_all(&mut s, key, 0), want);
    assert_eq!(read_all(&mut s, other, 0), (0..40).collect::<Vec<_>>());
    eprintln!("file faults: EIO on rename at mount: 1 failure injected");
}

#[test]
fn eio_on_dir_fsync() {
    let n = sweep(Kind::SyncDir, EIO);
    eprintln!("file faults: EIO on directory fsync: {n} failures injected");
}

#[test]
fn enospc_on_create() {
    let n = sweep(Kind::Create, ENOSPC);
    eprintln!("file faults: ENOSPC on file creation: {n} failures injected");
}

/// Acknowledgements fail the same way and leave no mark behind.
#[test]
fn failed_ack_leaves_no_mark() {
    let d = TempDir::new("fack");
    let cfg = small_cfg(d.path());
    let ffs = FaultFs::default();
    let mut s = FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap();
    s.mount().unwrap();
    let key = sensor_spool::storage::SensorKey { source: 1, id: 2 };
    s.append(&[OwnedRun::new(key, 0, 20).run()], |_| {})
        .unwrap();
    s.ack(key, 5, |_| {}).unwrap();
    arm(&ffs, Kind::Sync, 0, EIO);
    assert!(s.ack(key, 10, |_| {}).is_err());
    assert_eq!(recover_all(&mut s).acks.get(&key), Some(&5));
    s.ack(key, 10, |_| {}).unwrap();
    drop(s);
    let mut s = open_std(&cfg);
    assert_eq!(recover_all(&mut s).acks.get(&key), Some(&10));
    assert_eq!(read_all(&mut s, key, 10), (10..20).collect::<Vec<_>>());
}
