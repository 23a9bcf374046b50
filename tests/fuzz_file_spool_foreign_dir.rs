//! Regression (fuzz target `file_spool`): a data file whose header says source 0 found
//! in another source's directory (here `mgc/`, with no `host/` directory) made mount
//! note source 0's directory as existing, so the first new file of source 0 was
//! created in a directory that did not exist and the append (in the fuzz run, an
//! acknowledgement) failed with `NotFound`. Minimized input: a `.tmp` file with a
//! source-0 header and two runs in `source_009/`, renamed into place at mount, then an
//! acknowledgement. A source's directory now counts as existing when it is listed.

mod file_common;

use file_common::{TempDir, append_tsd};
use sensor_spool::storage::file::{FileConfig, source_dir_name};
use sensor_spool::storage::{FileStorage, SensorKey, Storage};
use std::path::Path;

const KEY: SensorKey = SensorKey { source: 0, id: 3 };

fn cfg(root: &Path) -> FileConfig {
    let mut c = FileConfig::new(root);
    c.file_size = 1024;
    c.disk_limit = 1024 * 8;
    c.free_space_reserve = 0;
    c.background_spares = false;
    c
}

fn append(st: &mut FileStorage, first: u32) {
    append_tsd(st, KEY, first, 100);
}

#[test]
fn file_spool_file_in_another_sources_directory() {
    let d = TempDir::new("foreign-dir");
    let mut st = FileStorage::new(cfg(d.path())).unwrap();
    st.mount().unwrap();
    append(&mut st, 0);
    let paths = st.file_paths();
    drop(st);
    // Move source 0's only file into `mgc/` and remove `host/`.
    let host = d.path().join(source_dir_name(0));
    let mgc = d.path().join(source_dir_name(1));
    std::fs::create_dir_all(&mgc).unwrap();
    for p in &paths {
        std::fs::rename(p, mgc.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::remove_dir_all(&host).unwrap();

    let mut st = FileStorage::new(cfg(d.path())).unwrap();
    st.mount().unwrap();
    assert_eq!(st.file_stats().files, 1);
    // The first fits in the moved file; the second starts a file in `host/`.
    append(&mut st, 100);
    append(&mut st, 200);
    st.ack(KEY, 50, |_| {}).unwrap();
    assert!(host.is_dir());
    drop(st);

    let mut st = FileStorage::new(cfg(d.path())).unwrap();
    st.mount().unwrap();
    let mut seq = 50;
    let mut out = [0u8; 512];
    while let Some(r) = st.read(KEY, seq, &mut out).unwrap() {
        assert_eq!(r.first, seq);
        for i in 0..r.count {
            let v = u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
            assert_eq!(v, seq + i as u32);
        }
        seq += r.count as u32;
    }
    assert_eq!(seq, 300);
}
