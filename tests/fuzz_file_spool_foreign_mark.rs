//! Regression (fuzz target `file_spool`): an acknowledgement mark for a sensor of source
//! 0 found in a data file of another source (header source 255) with a higher file
//! number won over the mark the store had just appended to source 0's current (older)
//! file, so after a remount the sensor's acknowledgement jumped to the foreign value.
//! Minimized input: one batch of sensor (0, 1); a file `mgc/<n>.spl` with a valid header
//! (source 255, a large number) holding one mark for (0, 1); acknowledge; remount.
//! The store only writes marks into files of the sensor's own source, so marks in
//! another source's file are now ignored.

use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::{
    FileStorage, LogEntry, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cfg(root: &Path) -> FileConfig {
    let mut c = FileConfig::new(root);
    c.file_size = 2058;
    c.disk_limit = 2058 * 6;
    c.free_space_reserve = 0;
    c
}

#[test]
fn file_spool_mark_in_foreign_source_file_is_ignored() {
    let root =
        std::env::temp_dir().join(format!("sensor-spool-fuzzreg-mark-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let d = TempDir(root);
    let key = SensorKey { source: 0, id: 1 };
    let mut s = FileStorage::new(cfg(&d.0)).unwrap();
    s.mount().unwrap();
    let recs = [7u8; 24];
    let info = RunInfo {
        key,
        kind: RecordKind::Evt,
        first_seq: 15,
        count: 3,
        meta: RunMeta::default(),
    };
    s.append(
        &[Run {
            info,
            records: &recs,
        }],
        |_| {},
    )
    .unwrap();
    drop(s);
    // mgc/0000000000100000.spl: header (number 0x100000, source 255) + a mark for (0, 1).
    let crc32 = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let crc8 = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);
    let mut f = vec![0xFFu8; 20];
    f[..4].copy_from_slice(b"SPF2");
    f[4..12].copy_from_slice(&0x10_0000u64.to_le_bytes());
    f[12] = 255;
    let c = crc32.checksum(&f[..16]);
    f[16..20].copy_from_slice(&c.to_le_bytes());
    let start = f.len();
    f.extend_from_slice(&[0xAC, 20, 0, crc8.checksum(&[0xAC, 20, 0])]);
    f.extend_from_slice(&[0, 0xFF, 0xFF, 0xFF]);
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&3_409_524_537u32.to_le_bytes());
    // Frame CRCs cover the file's number first (format SPF2).
    let mut dg = crc32.digest();
    dg.update(&0x10_0000u64.to_le_bytes());
    dg.update(&f[start..]);
    f.extend_from_slice(&dg.finalize().to_le_bytes());
    std::fs::create_dir_all(d.0.join("mgc")).unwrap();
    std::fs::write(d.0.join("mgc").join("0000000000100000.spl"), &f).unwrap();

    let mut s = FileStorage::new(cfg(&d.0)).unwrap();
    s.mount().unwrap();
    // The foreign file mounts as data (its mark is valid, only foreign).
    assert_eq!(s.file_stats().files, 2);
    s.ack(key, 18, |_| {}).unwrap();
    drop(s);
    let mut s = FileStorage::new(cfg(&d.0)).unwrap();
    s.mount().unwrap();
    let mut last = None;
    s.recover(|e| {
        if let LogEntry::Ack { key: k, upto } = e
            && k == key
        {
            last = Some(upto);
        }
    })
    .unwrap();
    assert_eq!(
        last,
        Some(18),
        "the mark written last must win after a remount"
    );
}
