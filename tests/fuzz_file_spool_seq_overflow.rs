//! Regression (fuzz target `file_spool`): a spool file whose name or header carries a
//! sequence number near `u64::MAX` made `FileStorage::mount` overflow `next_seq`
//! (`max_seq + 1`: a panic with overflow checks, a wrap to 0 without, after which new
//! files would sort as the oldest). Minimized input: an empty file
//! `can_controller/ffffffffffffffff.tmp` (a `.tmp` leftover is renamed into place as
//! `ffffffffffffffff.spl`). Such numbers cannot be reached (one per file started), so
//! mount now treats numbers above `u64::MAX - 0xFFFF` as damage (the name is not a data
//! file, the header is bad), and starting a file when the numbers are exhausted fails
//! with an error instead of overflowing.

use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::{
    FileStorage, LogEntry, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("sensor-spool-fuzzreg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEY: SensorKey = SensorKey { source: 0, id: 1 };

fn cfg(root: &Path) -> FileConfig {
    let mut c = FileConfig::new(root);
    c.file_size = 778;
    c.disk_limit = 778 * 6;
    c.free_space_reserve = 0;
    c
}

/// Mounts, appends 3 records, remounts: the records come back and the new file got a
/// small sequence number.
fn mount_append_remount(root: &Path) -> FileStorage {
    let mut s = FileStorage::new(cfg(root)).unwrap();
    s.mount().unwrap();
    let recs: Vec<u8> = [10u32, 11, 12]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let info = RunInfo {
        key: KEY,
        kind: RecordKind::Tsd,
        first_seq: 0,
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
    let mut s = FileStorage::new(cfg(root)).unwrap();
    s.mount().unwrap();
    let mut runs = Vec::new();
    s.recover(|e| {
        if let LogEntry::Run(r) = e {
            runs.push(r)
        }
    })
    .unwrap();
    assert_eq!(runs, vec![info]);
    let mut out = [0u8; 12];
    let r = s.read(KEY, 0, &mut out).unwrap().unwrap();
    assert_eq!((r.first, r.count, &out[..]), (0, 3, &recs[..]));
    assert!(
        s.stats().head_seq < 1 << 32,
        "head seq {}",
        s.stats().head_seq
    );
    s
}

#[test]
fn file_spool_max_seq_tmp_name() {
    // The minimized fuzz input.
    let d = TempDir::new("tmp");
    let dir = d.0.join("can_controller");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ffffffffffffffff.tmp"), b"").unwrap();
    mount_append_remount(&d.0);
}

#[test]
fn file_spool_max_seq_spl_name() {
    let d = TempDir::new("spl");
    let dir = d.0.join("host");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ffffffffffffffff.spl"), b"").unwrap();
    std::fs::write(dir.join("fffffffffffffffe.spl"), b"junk").unwrap();
    mount_append_remount(&d.0);
}

#[test]
fn file_spool_max_seq_in_header() {
    // A valid header (CRC ok) with sequence number u64::MAX, then a valid frame.
    let crc32 = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let crc8 = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);
    let mut f = vec![0xFFu8; 20];
    f[..4].copy_from_slice(b"SPF2");
    f[4..12].copy_from_slice(&u64::MAX.to_le_bytes());
    f[12] = 0;
    let c = crc32.checksum(&f[..16]);
    f[16..].copy_from_slice(&c.to_le_bytes());
    // EVT run: kind 2, source 0, count 1, id 9, first seq 5, one record.
    let body = [2u8, 0, 1, 0, 9, 0, 0, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let len = (4 + body.len() + 4) as u16;
    let l = len.to_le_bytes();
    let start = f.len();
    f.extend_from_slice(&[0xB5, l[0], l[1], crc8.checksum(&[0xB5, l[0], l[1]])]);
    f.extend_from_slice(&body);
    // Frame CRCs cover the file's number first (format SPF2).
    let mut dg = crc32.digest();
    dg.update(&u64::MAX.to_le_bytes());
    dg.update(&f[start..]);
    f.extend_from_slice(&dg.finalize().to_le_bytes());
    let d = TempDir::new("hdr");
    let dir = d.0.join("host");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0000000000000001.spl"), &f).unwrap();
    let s = mount_append_remount(&d.0);
    // The damaged file went to quarantine at the first mount, so it is not data.
    assert!(d.0.join("quarantine").read_dir().unwrap().count() == 1);
    assert_eq!(s.file_paths().len(), 1);
}
