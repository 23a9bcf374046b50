//! What an archive was built with (`spool_features`): the C library's storage back ends are
//! chosen at compile time (cargo features `storage-nor`, `storage-files`; neither = RAM
//! only, and no flash or spill code is linked).

/// `spool_features()` bit: NOR flash storage (`spool_config_t.flash`, feature `storage-nor`).
pub const SPOOL_FEATURE_STORAGE_NOR: u32 = 1;
/// `spool_features()` bit: spool directory storage (`spool_config_t.dir`, feature
/// `storage-files`, host builds).
pub const SPOOL_FEATURE_STORAGE_FILES: u32 = 2;
/// `spool_features()` bit: the archive is the `std` (Linux) build.
pub const SPOOL_FEATURE_STD: u32 = 4;

/// The features this archive was built with, as `SPOOL_FEATURE_*` bits. No storage bit means
/// a RAM-only archive: `spool_init` with `flash` callbacks or a `dir` then returns
/// `SPOOL_ERR_UNSUPPORTED`. Works before `spool_init`, from any thread; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_features() -> u32 {
    let mut f = 0;
    if cfg!(feature = "storage-nor") {
        f |= SPOOL_FEATURE_STORAGE_NOR;
    }
    if cfg!(feature = "storage-files") {
        f |= SPOOL_FEATURE_STORAGE_FILES;
    }
    if cfg!(feature = "std") {
        f |= SPOOL_FEATURE_STD;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits say exactly which features this test build has.
    #[test]
    fn features_match_the_build() {
        let f = spool_features();
        assert_eq!(
            f & SPOOL_FEATURE_STORAGE_NOR != 0,
            cfg!(feature = "storage-nor")
        );
        assert_eq!(
            f & SPOOL_FEATURE_STORAGE_FILES != 0,
            cfg!(feature = "storage-files")
        );
        assert_eq!(f & SPOOL_FEATURE_STD != 0, cfg!(feature = "std"));
        assert_eq!(f & !7, 0);
    }

    /// A RAM-only archive (no `storage-*` feature) refuses flash callbacks and a directory
    /// with `SPOOL_ERR_UNSUPPORTED`, changes nothing, and still initialises RAM only. Run by
    /// the `size` CI stage: `cargo test --lib --no-default-features --features std,ffi`.
    #[cfg(not(any(feature = "storage-nor", feature = "storage-files")))]
    #[test]
    fn a_ram_only_archive_refuses_storage_as_unsupported() {
        use crate::ffi::{
            SPOOL_STORAGE_NONE, SpoolConfig, SpoolStatus, SpoolStorageStats, spool_config_default,
            spool_deinit, spool_init, spool_storage_stats,
        };
        unsafe extern "C" fn read(_: *mut core::ffi::c_void, _: u32, _: *mut u8, _: u32) -> i32 {
            0
        }
        let mut cfg = core::mem::MaybeUninit::<SpoolConfig>::uninit();
        // SAFETY: a valid out-pointer; the default config is written in full.
        assert_eq!(
            unsafe { spool_config_default(cfg.as_mut_ptr()) },
            SpoolStatus::SPOOL_OK
        );
        // SAFETY: initialised by spool_config_default.
        let cfg = unsafe { cfg.assume_init() };
        let mut flash = cfg;
        flash.flash.read = Some(read);
        // SAFETY: a valid config.
        assert_eq!(
            unsafe { spool_init(&flash) },
            SpoolStatus::SPOOL_ERR_UNSUPPORTED
        );
        let mut dir = cfg;
        dir.dir = c"/tmp/spool-unsupported".as_ptr();
        // SAFETY: a valid config with a NUL-terminated dir.
        assert_eq!(
            unsafe { spool_init(&dir) },
            SpoolStatus::SPOOL_ERR_UNSUPPORTED
        );
        // Nothing was initialised: a RAM-only init works.
        // SAFETY: a valid config.
        assert_eq!(unsafe { spool_init(&cfg) }, SpoolStatus::SPOOL_OK);
        let mut st = SpoolStorageStats::default();
        // SAFETY: a valid out-pointer.
        assert_eq!(
            unsafe { spool_storage_stats(&mut st) },
            SpoolStatus::SPOOL_OK
        );
        assert_eq!(st.kind, SPOOL_STORAGE_NONE);
        assert_eq!(spool_deinit(), SpoolStatus::SPOOL_OK);
    }
}
