//! Regression (fuzz target `flash_mount`): a sector header with a valid CRC and sequence
//! number `u64::MAX` became the head at mount; the next sector opened got number 0
//! (wrapping), so after a remount the newest data looked oldest and the acknowledgement
//! mark just written lost against older marks. Minimized situation: a valid log, one
//! sector's header forged to `u64::MAX`, then an acknowledgement, then a remount.
//! Such numbers cannot be reached (one per sector opened), so they now mark the sector
//! as not formatted.
#![cfg(feature = "_mock-flash")]

use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{LogEntry, NorFlashStorage, SensorKey, Storage};

#[test]
fn flash_mount_max_sector_seq_does_not_wrap() {
    let key = SensorKey {
        source: 255,
        id: u32::MAX,
    };
    let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::new(3, 1)).unwrap();
    st.mount().unwrap();
    st.ack(key, 5, |_| {}).unwrap();
    let mut img = st.flash().image().to_vec();
    // Sector 1: header "SPL2", sequence 2^48 - 1 (the largest the field holds),
    // floor = sequence (back 0), CRC-32C; rest erased.
    let crc32 = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    img[512..516].copy_from_slice(b"SPL2");
    img[516..522].copy_from_slice(&[0xFF; 6]);
    img[522..524].copy_from_slice(&0u16.to_le_bytes());
    let c = crc32.checksum(&img[512..524]);
    img[524..528].copy_from_slice(&c.to_le_bytes());
    // A mark for the key inside the forged sector, written by a second store.
    let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    // Enough marks to fill the forged head sector and open the next one.
    for upto in 6..50 {
        st.ack(key, upto, |_| {}).unwrap();
    }
    let img = st.flash().image().to_vec();
    let mut st = NorFlashStorage::<_>::new(MockFlash::<8, 512>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    let mut last = None;
    st.recover(|e| {
        if let LogEntry::Ack { key: k, upto } = e
            && k == key
        {
            last = Some(upto);
        }
    })
    .unwrap();
    assert_eq!(
        last,
        Some(49),
        "the mark written last must win after a remount"
    );
}
