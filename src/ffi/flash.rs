//! Storage of the C API: a NOR flash region given as C callbacks (`spool_flash_t`), seen
//! by the library as an `embedded_storage` `NorFlash` ([`CFlash`]) under a
//! [`NorFlashStorage`], or (host builds) a spool directory ([`FileStorage`]), or nothing.
//!
//! # Geometry
//!
//! `NorFlash` geometry is compile-time (`WRITE_SIZE`, `ERASE_SIZE`), the part's is only
//! known at `spool_init`. [`CFlash`] therefore presents one fixed geometry that every
//! supported part can serve: programs of multiples of [`SPOOL_FLASH_PROGRAM_ALIGN`] (32)
//! bytes at 32-aligned offsets (valid for any power-of-two write size up to 32) and
//! sectors of [`SPOOL_FLASH_SECTOR_SIZE`] (4 KiB) bytes, each erased with one callback per
//! erase unit of the part (power of two, 256 B ..= 4 KiB). One `NorFlashStorage`
//! instantiation serves every part, so the code is linked once. The price over a
//! native geometry: sector headers and acknowledgement frames take 32 bytes instead of
//! `round_up(16 or 20, write_size)`, and each batch frame is padded to 32 bytes.
//!
//! A power cut during the erase of a 4 KiB sector made of several erase units leaves some
//! units erased and some not: the same as a torn erase of one unit (the sector's header
//! or frames fail their checks), which `NorFlashStorage` already handles.

#[cfg(any(feature = "storage-nor", feature = "storage-files"))]
use super::types::SpoolStatus;
#[cfg(feature = "storage-nor")]
use crate::storage::NorFlashStorage;
use crate::storage::{
    Batch, Keep, LogEntry, NoStorage, ReadHint, ReadOut, RunInfo, SensorKey, Storage, StorageError,
    StorageStats,
};
#[cfg(feature = "storage-nor")]
pub(crate) use nor::CFlash;

/// Staging buffer of the flash log (bytes; frames up to this size take one program call).
#[cfg(feature = "storage-nor")]
const FLASH_BUF: usize = 128;

/// Frames remembered as verified out of order (the flash log's default).
#[cfg(feature = "storage-nor")]
const FLASH_VERIFY: usize = 4;

/// Run references of the flash log's read index (20 bytes of RAM each; see
/// `NorFlashStorage`): 32, the default, is 640 B of the C library's fixed RAM.
/// Fewer save RAM at the cost of more flash reads per `read` when many sensors
/// are read in turn.
#[cfg(feature = "storage-nor")]
const FLASH_RUNS: usize = 32;

/// `true` when the C library has a storage back end (feature `storage-nor` or
/// `storage-files`): the store then keeps a flash part per sensor slot and spills.
pub(crate) const HAS_STORAGE: bool = cfg!(any(feature = "storage-nor", feature = "storage-files"));

/// The NOR flash region of `spool_config_t.flash` (feature `storage-nor`).
#[cfg(feature = "storage-nor")]
mod nor {
    use super::super::types::{
        SPOOL_FLASH_PROGRAM_ALIGN, SPOOL_FLASH_SECTOR_SIZE, SpoolFlash, SpoolStatus,
    };
    use embedded_storage::nor_flash::{
        ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
    };

    /// Error of a [`CFlash`] operation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct CFlashError(NorFlashErrorKind);

    impl NorFlashError for CFlashError {
        fn kind(&self) -> NorFlashErrorKind {
            self.0
        }
    }

    /// A NOR flash region reached through the firmware's callbacks (validated geometry).
    #[derive(Debug)]
    pub(crate) struct CFlash {
        cb: SpoolFlash,
    }

    // SAFETY: `ctx` is never dereferenced by the library, only passed back to the firmware's
    // callbacks, which are only called while the global critical section is held (one thread
    // at a time); `spool_flash_t` documents them as callable from any thread that calls the
    // library.
    unsafe impl Send for CFlash {}

    impl CFlash {
        /// Checks the callbacks and the geometry (see `spool_flash_t`). `Ok(None)` when every
        /// callback is NULL (no flash).
        pub(crate) fn new(cb: &SpoolFlash) -> Result<Option<CFlash>, SpoolStatus> {
            match (cb.read, cb.program, cb.erase) {
                (None, None, None) => return Ok(None),
                (Some(_), Some(_), Some(_)) => {}
                _ => return Err(SpoolStatus::SPOOL_ERR_BAD_GEOMETRY),
            }
            let sector = SPOOL_FLASH_SECTOR_SIZE;
            let ok = cb.write_size.is_power_of_two()
                && cb.write_size <= SPOOL_FLASH_PROGRAM_ALIGN
                && cb.erase_size.is_power_of_two()
                && (256..=sector).contains(&cb.erase_size)
                && cb.size.is_multiple_of(sector)
                && cb.size >= 2 * sector
                && cb.size <= 1 << 31;
            if ok {
                Ok(Some(CFlash { cb: *cb }))
            } else {
                Err(SpoolStatus::SPOOL_ERR_BAD_GEOMETRY)
            }
        }

        /// `offset .. offset + len` inside the region.
        fn check(&self, offset: u32, len: usize) -> Result<(), CFlashError> {
            let len =
                u32::try_from(len).map_err(|_| CFlashError(NorFlashErrorKind::OutOfBounds))?;
            match offset.checked_add(len) {
                Some(end) if end <= self.cb.size => Ok(()),
                _ => Err(CFlashError(NorFlashErrorKind::OutOfBounds)),
            }
        }
    }

    fn status(rc: core::ffi::c_int) -> Result<(), CFlashError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(CFlashError(NorFlashErrorKind::Other))
        }
    }

    impl ErrorType for CFlash {
        type Error = CFlashError;
    }

    impl ReadNorFlash for CFlash {
        const READ_SIZE: usize = 1;

        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            self.check(offset, bytes.len())?;
            if bytes.is_empty() {
                return Ok(());
            }
            let Some(read) = self.cb.read else {
                return Err(CFlashError(NorFlashErrorKind::Other));
            };
            // Cannot truncate: `check` proved `len <= size <= 2^31`.
            let len = bytes.len() as u32;
            // SAFETY: `bytes` is valid for writes of `len` bytes for the duration of the call;
            // the callback and `ctx` come from the firmware's `spool_flash_t`, whose contract is
            // to copy at most `len` bytes of the region at `offset` into `buf`.
            status(unsafe { read(self.cb.ctx, offset, bytes.as_mut_ptr(), len) })
        }

        fn capacity(&self) -> usize {
            self.cb.size as usize
        }
    }

    impl NorFlash for CFlash {
        const WRITE_SIZE: usize = SPOOL_FLASH_PROGRAM_ALIGN as usize;
        const ERASE_SIZE: usize = SPOOL_FLASH_SECTOR_SIZE as usize;

        fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            let unit = self.cb.erase_size;
            let sector = SPOOL_FLASH_SECTOR_SIZE;
            if to < from || !from.is_multiple_of(sector) || !to.is_multiple_of(sector) {
                return Err(CFlashError(NorFlashErrorKind::NotAligned));
            }
            self.check(from, (to - from) as usize)?;
            let Some(erase) = self.cb.erase else {
                return Err(CFlashError(NorFlashErrorKind::Other));
            };
            // `unit` is a power of two <= `sector` (checked in `new`), so it divides the range.
            let mut at = from;
            while at < to {
                // SAFETY: plain values; the callback and `ctx` come from the firmware's
                // `spool_flash_t`, whose contract is to erase `len` bytes of the region at `offset`.
                status(unsafe { erase(self.cb.ctx, at, unit) })?;
                at = at.saturating_add(unit);
            }
            Ok(())
        }

        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            let align = SPOOL_FLASH_PROGRAM_ALIGN;
            if !offset.is_multiple_of(align) || !bytes.len().is_multiple_of(align as usize) {
                return Err(CFlashError(NorFlashErrorKind::NotAligned));
            }
            self.check(offset, bytes.len())?;
            if bytes.is_empty() {
                return Ok(());
            }
            let Some(program) = self.cb.program else {
                return Err(CFlashError(NorFlashErrorKind::Other));
            };
            // SAFETY: `bytes` is valid for reads of `len` bytes for the duration of the call;
            // the callback and `ctx` come from the firmware's `spool_flash_t`, whose contract is
            // to program `len` bytes from `buf` at `offset` of the region.
            status(unsafe { program(self.cb.ctx, offset, bytes.as_ptr(), bytes.len() as u32) })
        }
    }
}

/// The store's storage back end. Not boxed (no allocator in `no_std` builds): the store
/// is one `static`, so the largest variant is paid once whatever is configured.
#[derive(Debug, Default)]
#[allow(clippy::large_enum_variant)]
// An explicit tag with `None` = 0: without it `None` is a niche value inside the flash
// variant (a `bool` of 2), which makes the initial store non-zero and moves the whole
// global state from .bss to .data (14 KB of flash image copied to RAM at reset).
#[repr(u8)]
pub(crate) enum FfiStorage {
    /// RAM only.
    #[default]
    None,
    /// A flash region given as callbacks.
    #[cfg(feature = "storage-nor")]
    Flash(NorFlashStorage<CFlash, FLASH_BUF, FLASH_VERIFY, FLASH_RUNS>),
    /// A spool directory (host builds).
    #[cfg(feature = "storage-files")]
    Files(crate::storage::FileStorage),
}

impl FfiStorage {
    /// `SPOOL_STORAGE_*` of this back end.
    pub(crate) fn kind(&self) -> u32 {
        match self {
            FfiStorage::None => super::types::SPOOL_STORAGE_NONE,
            #[cfg(feature = "storage-nor")]
            FfiStorage::Flash(_) => super::types::SPOOL_STORAGE_FLASH,
            #[cfg(feature = "storage-files")]
            FfiStorage::Files(_) => super::types::SPOOL_STORAGE_FILES,
        }
    }

    /// A mark of the back end's error counters, for [`FfiStorage::no_space_since`].
    pub(crate) fn error_mark(&self) -> u64 {
        match self {
            #[cfg(feature = "storage-files")]
            FfiStorage::Files(b) => b.failures(),
            #[allow(unreachable_patterns)]
            _ => 0,
        }
    }

    /// Whether an error since `mark` (an [`FfiStorage::error_mark`]) was the
    /// filesystem being (nearly) full, and the latest error says so.
    pub(crate) fn no_space_since(&self, mark: u64) -> bool {
        match self {
            #[cfg(feature = "storage-files")]
            FfiStorage::Files(b) => {
                self.error_mark() != mark && b.last_error().is_some_and(|e| e.is_no_space())
            }
            #[allow(unreachable_patterns)]
            _ => {
                let _ = mark;
                false
            }
        }
    }

    /// A flash log over `flash`.
    #[cfg(feature = "storage-nor")]
    pub(crate) fn flash(flash: CFlash) -> Result<FfiStorage, SpoolStatus> {
        NorFlashStorage::new(flash)
            .map(FfiStorage::Flash)
            .map_err(|_| SpoolStatus::SPOOL_ERR_BAD_GEOMETRY)
    }

    /// A spool directory at the NUL-terminated UTF-8 path `dir`.
    ///
    /// # Safety
    ///
    /// `dir` must point at a NUL-terminated string.
    #[cfg(feature = "storage-files")]
    pub(crate) unsafe fn files(dir: *const core::ffi::c_char) -> Result<FfiStorage, SpoolStatus> {
        // SAFETY: NUL-terminated per the contract; only read here (copied below).
        let path = unsafe { core::ffi::CStr::from_ptr(dir) };
        let path = path
            .to_str()
            .map_err(|_| SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT)?;
        if path.is_empty() {
            return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT);
        }
        let cfg = crate::storage::file::FileConfig::new(path);
        crate::storage::FileStorage::new(cfg)
            .map(FfiStorage::Files)
            .map_err(|_| SpoolStatus::SPOOL_ERR_STORAGE)
    }
}

/// Runs `$e` on the back end behind `$s` (bound to `$b`), whatever it is.
macro_rules! each {
    ($s:expr, $b:ident => $e:expr) => {
        match $s {
            FfiStorage::None => {
                let mut none = NoStorage;
                let $b = &mut none;
                $e
            }
            #[cfg(feature = "storage-nor")]
            FfiStorage::Flash($b) => $e,
            #[cfg(feature = "storage-files")]
            FfiStorage::Files($b) => $e,
        }
    };
}

impl Storage for FfiStorage {
    fn mount(&mut self) -> Result<(), StorageError> {
        each!(self, b => b.mount())
    }
    fn is_persistent(&self) -> bool {
        !matches!(self, FfiStorage::None)
    }
    fn is_mounted(&self) -> bool {
        each!(self, b => b.is_mounted())
    }
    fn max_batch_bytes(&self) -> usize {
        match self {
            FfiStorage::None => 0,
            #[cfg(feature = "storage-nor")]
            FfiStorage::Flash(b) => b.max_batch_bytes(),
            #[cfg(feature = "storage-files")]
            FfiStorage::Files(b) => b.max_batch_bytes(),
        }
    }
    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        batch: &B,
        on_evict: V,
    ) -> Result<(), StorageError> {
        each!(self, b => b.append(batch, on_evict))
    }
    fn read(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        each!(self, b => b.read(key, seq, out))
    }
    fn read_hinted(
        &mut self,
        key: SensorKey,
        seq: u32,
        hint: &mut ReadHint,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        each!(self, b => b.read_hinted(key, seq, hint, out))
    }
    fn tail_hint(&self) -> ReadHint {
        each!(self, b => b.tail_hint())
    }
    fn ack<V: FnMut(RunInfo)>(
        &mut self,
        key: SensorKey,
        upto: u32,
        on_evict: V,
    ) -> Result<(), StorageError> {
        each!(self, b => b.ack(key, upto, on_evict))
    }
    fn ack_keep<K: Keep>(
        &mut self,
        key: SensorKey,
        upto: u32,
        keep: &mut K,
    ) -> Result<(), StorageError> {
        each!(self, b => b.ack_keep(key, upto, keep))
    }
    // Every method with a default is forwarded too: a default here would
    // silently replace the back end's own (the reservations that keep
    // sequence numbers unique across restarts live in these).
    fn reserve<V: FnMut(RunInfo)>(
        &mut self,
        entries: &[(SensorKey, u32)],
        on_evict: V,
    ) -> Result<(), StorageError> {
        each!(self, b => b.reserve(entries, on_evict))
    }
    fn reserve_keep<K: Keep>(
        &mut self,
        entries: &[(SensorKey, u32)],
        keep: &mut K,
    ) -> Result<(), StorageError> {
        each!(self, b => b.reserve_keep(entries, keep))
    }
    fn snapshot_due(&self) -> bool {
        each!(self, b => b.snapshot_due())
    }
    fn snapshot_started(&mut self) {
        each!(self, b => b.snapshot_started())
    }
    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, on_evict: V) -> Result<bool, StorageError> {
        each!(self, b => b.evict_oldest(on_evict))
    }
    fn recover<V: FnMut(LogEntry)>(&mut self, f: V) -> Result<(), StorageError> {
        each!(self, b => b.recover(f))
    }
    fn stats(&self) -> StorageStats {
        match self {
            FfiStorage::None => StorageStats::default(),
            #[cfg(feature = "storage-nor")]
            FfiStorage::Flash(b) => b.stats(),
            #[cfg(feature = "storage-files")]
            FfiStorage::Files(b) => b.stats(),
        }
    }
}
