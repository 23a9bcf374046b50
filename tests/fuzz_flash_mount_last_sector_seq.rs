//! Regression (fuzz target `flash_mount`, artifact
//! `crash-7d15d3921ca3247be2de5c61fc43e64c9fa1009b`, seed in fuzz/corpus/flash_mount): a
//! sector header forged (valid CRC) to 2^47 - 1, the largest number a sector may carry,
//! becomes the head at mount; a mark that needs a new sector then has no number for it.
//! The storage refuses it with `Geometry` before erasing or programming anything (every
//! time), and the log recovers as before. (The target's oracle expected every mark to
//! succeed; it now accepts this refusal, and only at that number. A real log cannot get
//! there: one number per sector opened.)
#![cfg(feature = "_mock-flash")]

use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{LogEntry, NorFlashStorage, SensorKey, Storage, StorageError};

const LAST: u64 = (1 << 47) - 1;

#[test]
fn a_head_at_the_last_sector_number_refuses_marks_that_need_a_sector() {
    let key = SensorKey::new(3, 77);
    let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::new(3, 1)).unwrap();
    st.mount().unwrap();
    st.ack(key, 5, |_| {}).unwrap();
    let mut img = st.flash().image().to_vec();
    // Sector 1: header "SPL2", sequence 2^47 - 1, floor = sequence (back 0), CRC-32C.
    let crc32 = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    img[512..516].copy_from_slice(b"SPL2");
    img[516..522].copy_from_slice(&LAST.to_le_bytes()[..6]);
    img[522..524].copy_from_slice(&0u16.to_le_bytes());
    let c = crc32.checksum(&img[512..524]);
    img[524..528].copy_from_slice(&c.to_le_bytes());
    let recovered = |img: &[u8]| {
        let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::from_image(img, 1)).unwrap();
        st.mount().unwrap();
        let mut entries = Vec::new();
        st.recover(|e: LogEntry| entries.push(format!("{e:?}")))
            .unwrap();
        entries
    };
    let as_forged = recovered(&img);
    let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    assert_eq!(st.stats().head_seq, LAST);
    // Mount seals the head: the first mark already needs a new sector.
    let before = st.flash().image().to_vec();
    let mut evicted = 0;
    assert_eq!(
        st.ack(key, 6, |_| evicted += 1),
        Err(StorageError::Geometry)
    );
    assert_eq!(evicted, 0);
    assert!(
        st.flash().image() == &before[..],
        "a refused mark changed the flash"
    );
    // Refused again, the same way; the log recovers as it did.
    assert_eq!(st.ack(key, 7, |_| {}), Err(StorageError::Geometry));
    let mut entries = Vec::new();
    st.recover(|e: LogEntry| entries.push(format!("{e:?}")))
        .unwrap();
    assert_eq!(entries, as_forged);
    assert_eq!(recovered(st.flash().image()), as_forged);
}
