//! Regression (fuzz target `file_spool`, after spares became prefilled): a `.tmp`
//! leftover holding one zero byte, with no original beside it, is renamed into place
//! at mount and is then a file of zeros: a prefilled spare, kept as it is. The
//! target's post-mount check still required every data-named file to be empty or
//! start with a valid header; a file of zeros no larger than a file is now accepted
//! there too. This test pins the store's side: the file is a spare counted with its
//! size, the next file of its source starts in it, and everything reads back after a
//! remount.

mod file_common;

use file_common::{TempDir, append_tsd};
use sensor_spool::storage::file::{FileConfig, source_dir_name};
use sensor_spool::storage::{FileStorage, SensorKey, Storage};
use std::path::Path;

fn cfg(root: &Path) -> FileConfig {
    let mut c = FileConfig::new(root);
    c.file_size = 1024;
    c.disk_limit = 1024 * 6;
    c.free_space_reserve = 0;
    c.background_spares = false;
    c
}

#[test]
fn file_spool_zero_tmp_becomes_a_prefilled_spare() {
    let d = TempDir::new("zero-tmp");
    let dir = d.path().join(source_dir_name(1));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("3833ef2140027473.tmp"), [0u8]).unwrap();
    let mut st = FileStorage::new(cfg(d.path())).unwrap();
    st.mount().unwrap();
    let f = st.file_stats();
    assert_eq!(
        (f.files, f.spares, f.bytes, f.quarantined),
        (0, 1, 1, 0),
        "{f:?}"
    );
    let zero = dir.join("3833ef2140027473.spl");
    assert_eq!(std::fs::read(&zero).unwrap(), [0u8]);

    let key = SensorKey { source: 1, id: 5 };
    let records = append_tsd(&mut st, key, 0, 10);
    let f = st.file_stats();
    // The new file started in that spare (its name), grown by its frame.
    assert_eq!((f.files, f.spares_created), (1, 0), "{f:?}");
    assert_eq!(st.file_paths(), vec![zero.clone()]);
    assert_eq!(f.bytes, std::fs::metadata(&zero).unwrap().len());
    drop(st);
    let mut st = FileStorage::new(cfg(d.path())).unwrap();
    st.mount().unwrap();
    let mut out = [0u8; 64];
    let r = st.read(key, 0, &mut out).unwrap().unwrap();
    assert_eq!((r.first, r.count), (0, 10));
    assert_eq!(&out[..40], &records[..]);
}
