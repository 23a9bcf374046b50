//! A `Batch` that breaks its contract (its run counts change between the calls one
//! append makes) is refused with `TooLarge` when the change shows before its CRC pass,
//! and then nothing is erased, evicted or programmed, even when the append had to
//! open a new sector (evicting the oldest) to take it. Every call index from which the
//! batch changes is tried, with records added and records taken away.
#![cfg(feature = "_mock-flash")]

use std::cell::Cell;

use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{
    Batch, LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
    StorageError,
};

type St = NorFlashStorage<MockFlash<4, 1024>>;

/// One EVT run of `count` records whose `info` says 3 records more (or 1 fewer)
/// from its `from`-th call on.
struct Shifty {
    count: u16,
    calls: Cell<usize>,
    from: usize,
    longer: bool,
}

impl Batch for Shifty {
    fn runs(&self) -> usize {
        1
    }
    fn info(&self, _: usize) -> RunInfo {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let count = match (n >= self.from, self.longer) {
            (false, _) => self.count,
            (true, true) => self.count + 3,
            (true, false) => self.count - 1,
        };
        RunInfo {
            key: SensorKey { source: 2, id: 2 },
            kind: RecordKind::Evt,
            first_seq: 0,
            count,
            meta: RunMeta::default(),
        }
    }
    fn record(&self, _: usize, k: usize, out: &mut [u8]) {
        out.fill(k as u8);
    }
}

/// The runs a fresh mount recovers from `img`: (key, first, count).
fn stored(img: &[u8]) -> Vec<(SensorKey, u32, u16)> {
    let mut m = St::new(MockFlash::from_image(img, 1)).unwrap();
    m.mount().unwrap();
    let mut v = Vec::new();
    m.recover(|e| {
        if let LogEntry::Run(r) = e {
            v.push((r.key, r.first_seq, r.count));
        }
    })
    .unwrap();
    v
}

#[test]
fn a_batch_that_changes_before_its_crc_is_refused_with_nothing_erased() {
    let a = SensorKey { source: 1, id: 1 };
    let (mut refused, mut cases) = (0, 0);
    for longer in [true, false] {
        for from in 1..40 {
            cases += 1;
            // Sectors full of runs of A, the head almost: the changing batch needs
            // the next sector, whose opening erases it (and evicts the oldest).
            let mut st = St::new(MockFlash::new(3, 1)).unwrap();
            st.mount().unwrap();
            let recs = [7u8; 10 * 8];
            let mut seq = 0;
            while st.stats().head_seq < 3 {
                let run = Run {
                    info: RunInfo {
                        key: a,
                        kind: RecordKind::Evt,
                        first_seq: seq,
                        count: 10,
                        meta: RunMeta::default(),
                    },
                    records: &recs,
                };
                st.append(&[run], |_| {}).unwrap();
                seq += 10;
            }
            // Fill the head until a 6-record frame no longer fits it.
            loop {
                let before = st.stats().head_seq;
                let run = Run {
                    info: RunInfo {
                        key: a,
                        kind: RecordKind::Evt,
                        first_seq: seq,
                        count: 1,
                        meta: RunMeta::default(),
                    },
                    records: &recs[..8],
                };
                let img = st.flash().image().to_vec();
                st.append(&[run], |_| {}).unwrap();
                if st.stats().head_seq != before {
                    // That one opened a sector: take the image before it.
                    st = St::new(MockFlash::from_image(&img, 1)).unwrap();
                    st.mount().unwrap();
                    break;
                }
                seq += 1;
            }
            let stats = st.flash().stats();
            let head = st.stats().head_seq;
            let before_img = stored(st.flash().image());
            assert!(before_img.iter().all(|&(k, _, _)| k == a) && !before_img.is_empty());
            let batch = Shifty {
                count: 6,
                calls: Cell::new(0),
                from,
                longer,
            };
            let mut evicted = 0;
            let r = st.append(&batch, |_| evicted += 1);
            if r == Err(StorageError::TooLarge) {
                refused += 1;
                let now = st.flash().stats();
                assert_eq!(
                    now.erases, stats.erases,
                    "from {from}: erased before refusing"
                );
                assert_eq!(now.bytes_programmed, stats.bytes_programmed, "from {from}");
                assert_eq!((evicted, st.stats().head_seq), (0, head), "from {from}");
                // The log is as it was.
                assert_eq!(stored(st.flash().image()), before_img, "from {from}");
            } else {
                assert!(r.is_ok(), "from {from}, longer {longer}: {r:?}");
            }
        }
    }
    println!("changing batch: {cases} cases, {refused} refused with nothing erased or programmed");
    assert!(refused > 0);
}
