//! The spool over `FileStorage`: threshold flush into files, oldest-first reads
//! from files then RAM, persisted acknowledgements across a reset, and a flush
//! the filesystem refuses (ENOSPC / EIO through the fault layer): the records
//! stay in RAM, the spool stays consistent, and the next flush succeeds.

mod file_common;

use file_common::{Fault, FaultFs, TempDir, small_cfg};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, Spool};
use sensor_spool::storage::FileStorage;
use sensor_spool::storage::file::{FileConfig, FileError, FileOp};

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type S = Spool<P, 4, SECTORS, 4, FileStorage<FaultFs>, 4>;

const TSD: SensorKey = SensorKey { source: 0, id: 1 };
const EVT: SensorKey = SensorKey { source: 1, id: 2 };
const CAN: SensorKey = SensorKey { source: 2, id: 9 };
const RATE: u32 = 1000;
const T0: u64 = 1_700_000_000_000;

fn spool(ffs: &FaultFs, cfg: &FileConfig) -> S {
    let mut s = Spool::new(
        P::new(),
        FileStorage::with_fs(ffs.clone(), cfg.clone()).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    s.register(TSD, RATE).unwrap();
    s.register(EVT, 0).unwrap();
    s.register(CAN, 0).unwrap();
    s.recover_storage().unwrap();
    s
}

fn value(key: SensorKey, n: u32) -> u32 {
    n.wrapping_mul(2_654_435_761) ^ key.id
}

fn write(s: &mut S, from: u32, n: u32) {
    for k in from..from + n {
        let h = s.lookup(TSD).unwrap();
        s.write(h, value(TSD, k), T0 + k as u64 * RATE as u64)
            .unwrap();
        let h = s.lookup(EVT).unwrap();
        s.write(h, value(EVT, k), T0 + k as u64 * 7000).unwrap();
        let h = s.lookup(CAN).unwrap();
        s.write(h, value(CAN, k), T0 + k as u64 * 3000).unwrap();
    }
}

fn read_check(s: &mut S, key: SensorKey, from: u32, n: u32) {
    let h = s.lookup(key).unwrap();
    for k in from..from + n {
        let r = s
            .read(h)
            .unwrap_or_else(|e| panic!("{key:?} record {k}: {e:?}"));
        assert_eq!(r.seq, k, "{key:?}: out of order");
        assert_eq!(r.value, value(key, k), "{key:?} record {k}");
        if key == TSD {
            assert_eq!(r.time_ms, T0 + k as u64 * RATE as u64, "TSD time of {k}");
        }
    }
}

#[test]
fn flush_into_files_and_survive_a_reset() {
    let d = TempDir::new("spool");
    let cfg = small_cfg(d.path());
    let ffs = FaultFs::default();
    let mut s = spool(&ffs, &cfg);
    write(&mut s, 0, 400);
    let sp = s.spill_stats();
    assert!(
        sp.batches > 0 && sp.flushed > 0,
        "no flush happened: {sp:?}"
    );
    assert_eq!(sp.errors, 0);
    assert!(
        s.storage().file_stats().files >= 3,
        "one directory per source"
    );
    assert_eq!(s.check(), Ok(()));
    read_check(&mut s, EVT, 0, 150);
    let h = s.lookup(EVT).unwrap();
    s.ack(h, 120).unwrap(); // 30 stay pending
    drop(s);
    // Reset: a fresh spool on the same directory.
    let mut s = spool(&ffs, &cfg);
    assert_eq!(s.check(), Ok(()));
    let n = s.sensor_stats(s.lookup(EVT).unwrap()).unwrap().count;
    assert!(n > 0);
    // The acknowledged 120 never come back; the pending ones do.
    read_check(&mut s, EVT, 120, n);
    let n = s.sensor_stats(s.lookup(TSD).unwrap()).unwrap().count;
    read_check(&mut s, TSD, 0, n);
    eprintln!(
        "spool over files: {} batches, {} records flushed, {} files",
        sp.batches,
        sp.flushed,
        s.storage().file_stats().files
    );
}

#[test]
fn refused_flush_keeps_records_in_ram_and_retries() {
    for (what, errno, write_fault) in [
        ("ENOSPC on write", 28, true),
        ("EIO on fdatasync", 5, false),
    ] {
        let d = TempDir::new("spoolfault");
        let cfg = small_cfg(d.path());
        let ffs = FaultFs::default();
        let mut s = spool(&ffs, &cfg);
        write(&mut s, 0, 100);
        let before = s.spill_stats();
        assert!(before.batches > 0);
        {
            let f = Fault {
                after: 0,
                errno,
                short: false,
                sticky: true,
            };
            let mut p = ffs.plan.lock().unwrap();
            if write_fault {
                p.write = Some(f);
            } else {
                p.sync = Some(f);
            }
        }
        // Write until a flush is attempted (and refused), then a few more:
        // not enough to overflow RAM.
        let mut n = 100;
        while s.spill_stats().errors == before.errors && n < 300 {
            write(&mut s, n, 1);
            n += 1;
        }
        write(&mut s, n, 2);
        n += 2;
        let sp = s.spill_stats();
        assert!(
            sp.errors > before.errors,
            "{what}: flush not attempted: {sp:?}"
        );
        assert_eq!(sp.flushed, before.flushed, "{what}: nothing flushed");
        match s.storage().last_error() {
            Some(FileError::Io {
                op, errno: Some(e), ..
            }) => {
                assert_eq!(e, errno);
                assert_eq!(
                    op,
                    if write_fault {
                        FileOp::Write
                    } else {
                        FileOp::Sync
                    }
                );
            }
            other => panic!("{what}: last_error {other:?}"),
        }
        // The Rust API tells a full filesystem from other failures.
        let want = if errno == 28 {
            Error::NoSpace
        } else {
            Error::Storage
        };
        assert_eq!(s.flush(), Err(want), "{what}: explicit flush");
        assert_eq!(s.spill_stats().flushed, before.flushed, "{what}");
        assert_eq!(s.check(), Ok(()), "{what}");
        for k in [TSD, EVT, CAN] {
            let st = s.sensor_stats(s.lookup(k).unwrap()).unwrap();
            assert_eq!((st.count, st.lost), (n, 0), "{what}: {k:?} kept in RAM");
        }
        // The filesystem recovers: the next flush goes through.
        {
            let mut p = ffs.plan.lock().unwrap();
            p.write = None;
            p.sync = None;
        }
        write(&mut s, n, 100);
        let sp = s.spill_stats();
        assert!(sp.flushed > before.flushed, "{what}: retried flush");
        assert_eq!(s.check(), Ok(()));
        for k in [TSD, EVT, CAN] {
            read_check(&mut s, k, 0, n + 100);
            assert_eq!(s.read(s.lookup(k).unwrap()), Err(Error::NoData));
        }
        // And a reset sees every flushed record exactly once, in order.
        drop(s);
        let mut s = spool(&ffs, &cfg);
        for k in [TSD, EVT, CAN] {
            let n = s.sensor_stats(s.lookup(k).unwrap()).unwrap().count;
            assert!(n > 0);
            read_check(&mut s, k, 0, n);
        }
        eprintln!(
            "spool over files: {what}: {} refused flushes, records kept",
            sp.errors
        );
    }
}

/// Issue "Crash truth on Linux files", item 6, at the spool: the spool
/// directory removed (`rm -rf` of the root) while the spool runs. Before, the
/// next threshold flush returned `Ok` for records written into unlinked files,
/// and reads failed forever while counts never drained. Now the store detects
/// it before reporting the flush durable, makes the tree again, and reports
/// the runs of the vanished files through `on_evict`: every record written is
/// afterwards either delivered (genuine, in order) or counted lost, and the
/// counts drain to zero. A reset then delivers what was flushed after the loss.
#[test]
fn spool_directory_removed_while_running() {
    let d = TempDir::new("spoolrm");
    let cfg = small_cfg(d.path());
    let ffs = FaultFs::default();
    let mut s = spool(&ffs, &cfg);
    write(&mut s, 0, 400);
    let before = s.spill_stats();
    assert!(before.flushed > 0 && before.in_storage > 0, "{before:?}");
    std::fs::remove_dir_all(d.path()).unwrap();
    write(&mut s, 400, 400);
    let sp = s.spill_stats();
    assert!(sp.flushed > before.flushed, "flushes went on: {sp:?}");
    assert!(d.path().join("host").is_dir(), "the tree is made again");
    assert!(s.storage().file_stats().files_vanished > 0);
    assert_eq!(s.check(), Ok(()));
    let mut lost_total = 0;
    for k in [TSD, EVT, CAN] {
        let h = s.lookup(k).unwrap();
        let mut delivered = 0u32;
        let mut last: Option<u32> = None;
        loop {
            match s.read(h) {
                Ok(r) => {
                    assert_eq!(r.value, value(k, r.seq), "{k:?} record {}", r.seq);
                    assert!(last.is_none_or(|l| r.seq > l), "{k:?}: order");
                    last = Some(r.seq);
                    delivered += 1;
                }
                Err(Error::NoData) => break,
                Err(e) => panic!("{k:?}: read failed: {e:?}"),
            }
        }
        s.ack(h, delivered).unwrap();
        let st = s.sensor_stats(h).unwrap();
        assert_eq!(st.count, 0, "{k:?}: counts drain: {st:?}");
        assert_eq!(
            delivered + st.lost as u32,
            800,
            "{k:?}: every record delivered or counted lost"
        );
        assert!(st.lost > 0, "{k:?}: the vanished records are counted");
        lost_total += st.lost as u32;
    }
    eprintln!("spool directory removed while running: {lost_total} records counted lost");
}
