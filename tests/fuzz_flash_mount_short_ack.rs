//! Regression (fuzz target `flash_mount`): an acknowledgement frame with a valid header
//! check and CRC but a length too short for a mark (16 bytes at write size 16: header,
//! one body byte, padding, CRC) was accepted by `recover`, which read the 12-byte mark
//! across the padding into the CRC and reported an invented mark
//! (source 255, id 0xFFFF_FFFF, `upto` = the CRC). Minimized input: sector 0 with a valid
//! header, that frame right after it. Such a frame is now counted as bad and skipped.
#![cfg(feature = "_mock-flash")]

use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{LogEntry, NorFlashStorage, Storage};

#[test]
fn flash_mount_short_ack_frame_is_not_a_mark() {
    let crc32 = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let crc8 = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);
    let mut img = vec![0xFFu8; 2 * 256];
    // Sector 0: header "SPL2", sequence 1 (48 bits), floor 1 (back 0), CRC-32C.
    img[..4].copy_from_slice(b"SPL2");
    img[4..10].copy_from_slice(&1u64.to_le_bytes()[..6]);
    img[10..12].copy_from_slice(&0u16.to_le_bytes());
    let c = crc32.checksum(&img[..12]);
    img[12..16].copy_from_slice(&c.to_le_bytes());
    // At 16: ack frame of length 16 with a one-byte body 0xFF.
    let mut f = vec![0xAC, 16, 0, crc8.checksum(&[0xAC, 16, 0]), 0xFF];
    f.resize(12, 0xFF);
    let c = crc32.checksum(&f);
    f.extend_from_slice(&c.to_le_bytes());
    img[16..32].copy_from_slice(&f);

    let mut st = NorFlashStorage::<_>::new(MockFlash::<16, 256>::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    let mut entries = Vec::new();
    st.recover(|e| entries.push(e)).unwrap();
    assert!(
        !entries.iter().any(|e| matches!(e, LogEntry::Ack { .. })),
        "invented mark: {entries:?}"
    );
    assert!(st.stats().bad_frames >= 1);
}
