//! Regression (fuzz target `flash_mount`, its bound on bytes read by `recover`): a frame
//! with a bad CRC in the middle of a sector stopped that sector's verification mark
//! there, and every later frame of the sector asked for restarted the verification at
//! the mark: the damaged frame was read again once per frame after it (recovery read
//! 10,160 B of a 2 KiB log). The mark now remembers the damage and the frames past it
//! are checked one by one, each read once.
#![cfg(feature = "_mock-flash")]

use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{
    LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};

const E: usize = 4096;
const RUNS: u32 = 60;

#[test]
fn flash_mount_damaged_frame_is_read_once() {
    let key = SensorKey { source: 1, id: 7 };
    let mut st = NorFlashStorage::<_>::new(MockFlash::<4, E>::new(2, 1)).unwrap();
    st.mount().unwrap();
    let rec = [0x5Au8; 4 * 8];
    for i in 0..RUNS {
        let run = Run {
            info: RunInfo {
                key,
                kind: RecordKind::Evt,
                first_seq: i * 4,
                count: 4,
                meta: RunMeta::default(),
            },
            records: &rec,
        };
        st.append(&[run], |_| panic!("no eviction")).unwrap();
    }
    let mut img = st.flash().image().to_vec();
    let used = E - img[..E].iter().rev().take_while(|&&b| b == 0xFF).count();
    assert!(img[E..].iter().all(|&b| b == 0xFF), "one sector used");
    // A record byte of the second frame flipped: its CRC fails, its header is good.
    let second = 16 + (used - 16) / RUNS as usize + 20;
    img[second] ^= 0x01;

    let mut st = NorFlashStorage::<_>::new(MockFlash::<4, E>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    st.flash_mut().reset_stats();
    let mut runs = 0;
    st.recover(|e| {
        if let LogEntry::Run(_) = e {
            runs += 1
        }
    })
    .unwrap();
    let read = st.flash().stats().bytes_read as usize;
    println!("recover: {runs} runs, {read} B read of {used} B used");
    assert_eq!(runs, RUNS - 1, "every run but the damaged one");
    assert!(read <= used, "recover read {read} B of a {used} B log");

    // A read-out in a fresh mount: every record but the damaged run's, each frame
    // read about once.
    let mut st = NorFlashStorage::<_>::new(MockFlash::<4, E>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    st.flash_mut().reset_stats();
    let (mut seq, mut got) = (0u32, 0u32);
    let mut out = [0u8; 64];
    while let Some(r) = st.read(key, seq, &mut out).unwrap() {
        got += r.count as u32;
        seq = r.first + r.count as u32;
    }
    let read = st.flash().stats().bytes_read as usize;
    println!("read-out: {got} records, {read} B read of {used} B used");
    assert_eq!(got, (RUNS - 1) * 4);
    assert!(read <= 2 * used, "read-out read {read} B of a {used} B log");
}
