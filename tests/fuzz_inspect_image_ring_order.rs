//! Regression (fuzz target `inspect_image`): on an image whose sector numbers are out
//! of ring order (a sector holding number `q` where the ring arithmetic from the head
//! puts `q` elsewhere), `recover` reported runs twice. The mount's "sector verified"
//! bits are keyed by sector number alone; once the out-of-place sector was verified,
//! the bit for `q` vouched for the sector at `q`'s ring position, whose header was then
//! not read, and the stale frames there (no header, copies with good CRCs) were walked
//! without a CRC check. A bit now vouches for a sector only at its ring position.
//!
//! Built here with the writer, then moved: the oldest sector goes to the unused
//! sector before it in the ring, and its old place keeps the frames but loses its
//! header (as a copy or a torn erase of the header word can leave it).
#![cfg(feature = "_mock-flash")]

use sensor_spool::storage::inspect::Item;
use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{
    LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};

const E: usize = 256;

#[test]
fn inspect_image_out_of_order_sector_is_not_walked_twice() {
    let mut st = NorFlashStorage::<_>::new(MockFlash::<1, E>::new(4, 1)).unwrap();
    st.mount().unwrap();
    let key = SensorKey { source: 2, id: 9 };
    let rec = [0x5Au8; 3 * 8];
    let mut seq = 0;
    // Three sectors of EVT runs (3 records each): sectors 0, 1 full, 2 the head
    // (two runs in it).
    let mut in_head = 0;
    while in_head < 2 {
        let run = Run {
            info: RunInfo {
                key,
                kind: RecordKind::Evt,
                first_seq: seq,
                count: 3,
                meta: RunMeta::default(),
            },
            records: &rec,
        };
        st.append(&[run], |_| panic!("no eviction")).unwrap();
        seq += 3;
        if st.stats().head_seq == 3 {
            in_head += 1;
        }
    }
    let mut img = st.flash().image().to_vec();
    assert!(img[3 * E..].iter().all(|&b| b == 0xFF), "sector 3 unused");
    // Sector 0 (number 1) to sector 3, whose ring position is number 0; sector 0
    // (ring position: number 1) keeps its frames without its header.
    let (front, back) = img.split_at_mut(3 * E);
    back.copy_from_slice(&front[..E]);
    img[..16].fill(0xFF);

    let mut st = NorFlashStorage::<_>::new(MockFlash::<1, E>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    let mut walked = Vec::new();
    st.inspect(|i| {
        if let Item::Run(r) = i
            && r.live
        {
            walked.push(r.info.first_seq)
        }
    })
    .unwrap();
    let mut recovered = Vec::new();
    st.recover(|e| {
        if let LogEntry::Run(r) = e {
            recovered.push(r.first_seq)
        }
    })
    .unwrap();
    walked.sort_unstable();
    recovered.sort_unstable();
    let mut unique = recovered.clone();
    unique.dedup();
    assert_eq!(unique, recovered, "recover reported a run twice");
    assert_eq!(walked, recovered, "inspection walk and recover disagree");
    // Every run written is still there once (sector 0's runs now live in sector 3).
    assert_eq!(recovered, (0..seq).step_by(3).collect::<Vec<_>>());
}
