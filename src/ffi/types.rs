//! `#[repr(C)]` types of the C ABI: status codes, configuration, layout descriptor,
//! GPS configuration, records and statistics.

use core::ffi::{c_char, c_int, c_void};

/// Marks an optional field of `spool_layout_t` as "not present in the firmware's struct".
pub const SPOOL_FIELD_ABSENT: u32 = u32::MAX;

/// Marks an optional GPS sensor id of `spool_gps_config_t` as "not configured".
pub const SPOOL_ID_NONE: u32 = u32::MAX;

/// `spool_config_t.flags` bit, ABI 1 and 2 only: legacy `read_tsd_evt` on an EVT entry
/// (`sample_rate == 0`) stores **two** `uint32_t` words, `value[0] = UTC seconds`,
/// `value[1] = value` (the MM1 EVT record layout, timestamp first, which the legacy
/// uploader reads through `(uint32_t *)&event_sample`). Since ABI 3 that is the default
/// and this flag is accepted and changes nothing; it cannot be combined with
/// `SPOOL_CFG_EVT_READ_ONE_WORD`.
pub const SPOOL_CFG_EVT_READ_TWO_WORDS: u32 = 1;

/// `spool_config_t.flags` bit (ABI 3): legacy `read_tsd_evt` on an EVT entry stores only
/// the value, in `value[0]` (one word, the default of ABI 1 and 2); the timestamp is then
/// only available from the native `spool_read`. TSD reads always store one word.
pub const SPOOL_CFG_EVT_READ_ONE_WORD: u32 = 2;

/// Number of tiers of the C block pool (`spool_pool_stats` fills this many entries).
pub const SPOOL_POOL_TIERS: usize = 3;

/// ABI version of this header; `spool_config_t.abi_version` must equal it. Version 2
/// appended `flash`, `dir` and `flush_threshold_pct` to `spool_config_t`. Version 3 made
/// the legacy EVT read fill two words `{utc, value}` by default, as MM1 did (one word is
/// now the opt-in `SPOOL_CFG_EVT_READ_ONE_WORD`), honours a firmware-lowered
/// `csd[e].no_pending` as MM1's un-read, and added `spool_mirror_stats`.
/// `spool_init` still accepts a version-2 config (same struct, with the version-2
/// behaviour: one-word EVT reads unless `SPOOL_CFG_EVT_READ_TWO_WORDS`) and a version-1
/// config (the fields before `flash`, RAM only, version-1 behaviour).
pub const SPOOL_ABI_VERSION: u32 = 3;

/// Sector size of the log the library keeps in a `spool_flash_t` region: the unit of
/// `size`, and the largest supported `erase_size`. One sector of the log is erased with
/// `SPOOL_FLASH_SECTOR_SIZE / erase_size` calls of `erase`.
pub const SPOOL_FLASH_SECTOR_SIZE: u32 = 4096;

/// Granularity of the library's `program` calls: `offset` and `len` are multiples of it
/// (so of any supported `write_size`).
pub const SPOOL_FLASH_PROGRAM_ALIGN: u32 = 32;

/// Status code returned by the C API. Values are fixed and will never be renumbered.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolStatus {
    /// Success.
    SPOOL_OK = 0,
    /// A required pointer argument was NULL.
    SPOOL_ERR_NULL = 1,
    /// `spool_init` has not been called (or `spool_deinit` was called since).
    SPOOL_ERR_NOT_INITIALIZED = 2,
    /// `spool_init` was called twice without `spool_deinit` in between.
    SPOOL_ERR_ALREADY_INITIALIZED = 3,
    /// An argument is out of its documented range (count 0, bad ABI version, bad flags, ...).
    SPOOL_ERR_INVALID_ARGUMENT = 4,
    /// The layout descriptor is inconsistent (field outside the struct, overlapping
    /// mirrored fields, unsupported field width, array size overflowing the address space).
    SPOOL_ERR_BAD_LAYOUT = 5,
    /// The (csb, csd) pair (or csd / ds pointer) was never registered with `spool_register_sensors`.
    SPOOL_ERR_NOT_REGISTERED = 6,
    /// `entry` or `no_items` is past the registered count.
    SPOOL_ERR_INDEX = 7,
    /// The registration table is full.
    SPOOL_ERR_REGISTRY_FULL = 8,
    /// The arrays overlap each other or an already registered array.
    SPOOL_ERR_OVERLAP = 9,
    /// Nothing to read.
    SPOOL_ERR_NO_DATA = 10,
    /// The sensor handle or key is not known to the store.
    SPOOL_ERR_UNKNOWN_SENSOR = 11,
    /// The store's sensor table (or its table of distinct TSD sample rates) is full.
    SPOOL_ERR_TABLE_FULL = 12,
    /// An acknowledgement asked for more records than are pending; nothing was erased.
    SPOOL_ERR_ACK_TOO_MANY = 13,
    /// The store is full and its overflow policy refused the record.
    SPOOL_ERR_FULL = 14,
    /// Pool: no free block of a fitting size right now (transient).
    SPOOL_ERR_EXHAUSTED = 15,
    /// Pool: the request is larger than the largest block (permanent).
    SPOOL_ERR_TOO_LARGE = 16,
    /// Pool: the pointer was not handed out by this pool.
    SPOOL_ERR_FOREIGN_PTR = 17,
    /// Pool: the block is already free.
    SPOOL_ERR_DOUBLE_FREE = 18,
    /// An internal invariant does not hold (`spool_check` / `spool_pool_check`).
    SPOOL_ERR_CORRUPTED = 19,
    /// Non-volatile storage failed.
    SPOOL_ERR_STORAGE = 20,
    /// The store is in use by this same thread (re-entrant call from a callback).
    SPOOL_ERR_BUSY = 21,
    /// The sensor (source, id) is already registered with another sample rate (a TSD rate
    /// change, or TSD <-> EVT: `sample_rate` changed between 0 and non-0).
    SPOOL_ERR_CONFLICT = 22,
    /// Any other store error.
    SPOOL_ERR_INTERNAL = 23,
    /// `spool_config_t.flash`: unsupported geometry (see `spool_flash_t`), or only some of
    /// the three callbacks given.
    SPOOL_ERR_BAD_GEOMETRY = 24,
    /// MM2 façade: the call names another upload source than the one the sensor's arrays
    /// were registered under (`spool_register_sensors`); nothing was changed.
    SPOOL_ERR_SOURCE_MISMATCH = 25,
    /// Host spool directory (`dir`): the filesystem is (nearly) full: `ENOSPC` / `EDQUOT`,
    /// or less than the free-space reserve (16 MiB) plus one file (64 KiB) is available.
    /// Nothing was written; the records stay in RAM (and, when RAM fills, the overflow
    /// policy applies). Retry once space is freed.
    SPOOL_ERR_NO_SPACE = 26,
    /// `spool_init`: the configuration asks for a storage this archive was built without
    /// (`spool_config_t.flash` without feature `storage-nor`, `dir` without
    /// `storage-files`; `spool_features` says which storage an archive has). Nothing changed.
    SPOOL_ERR_UNSUPPORTED = 27,
}

impl SpoolStatus {
    /// `true` for `SpoolStatus::SPOOL_OK`.
    pub fn is_ok(self) -> bool {
        self == SpoolStatus::SPOOL_OK
    }
}

/// Result type used inside the FFI layer.
pub(crate) type FfiResult<T> = Result<T, SpoolStatus>;

/// Converts an internal result into a status code.
pub(crate) fn status_of(r: FfiResult<()>) -> SpoolStatus {
    match r {
        Ok(()) => SpoolStatus::SPOOL_OK,
        Err(e) => e,
    }
}

/// Opaque stand-in for the firmware's `struct control_sensor_block` (`imx_control_sensor_block_t`).
/// The header only forward-declares the tag; the firmware's own definition is used, and the
/// library reads it exclusively through the registered `spool_layout_t`.
#[repr(C)]
pub struct ControlSensorBlock {
    _opaque: [u8; 0],
}

/// Opaque stand-in for the firmware's `struct control_sensor_data` (`control_sensor_data_t`).
#[repr(C)]
pub struct ControlSensorData {
    _opaque: [u8; 0],
}

/// Opaque stand-in for the firmware's `struct _data_store_info` (`data_store_info_t`).
#[repr(C)]
pub struct DataStoreInfo {
    _opaque: [u8; 0],
}

/// A NOR flash region handed to the library as callbacks (`spool_config_t.flash`). The
/// library keeps a log of CRC-framed batches in it (`NorFlashStorage`, sectors of
/// `SPOOL_FLASH_SECTOR_SIZE` bytes) and survives a power cut at any point.
///
/// All three callbacks NULL: no flash (RAM only). Only some of them NULL, or a geometry
/// outside these rules, fails `spool_init` with `SPOOL_ERR_BAD_GEOMETRY`:
/// `write_size` a power of two in 1..=32; `erase_size` a power of two in
/// 256..=`SPOOL_FLASH_SECTOR_SIZE`; `size` a multiple of `SPOOL_FLASH_SECTOR_SIZE`, at least
/// two of them, at most 2 GiB.
///
/// Each callback gets `ctx` unchanged (may be NULL) and an `offset` relative to the start of
/// the region; it returns 0 on success and any other value on failure (the library then
/// reports `SPOOL_ERR_STORAGE` and keeps the data in RAM). They are called **inside** the
/// library's critical section (interrupts masked with the cortex-m / riscv providers) and
/// must not call back into the library (that gets `SPOOL_ERR_BUSY`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SpoolFlash {
    /// Copies `len` bytes at `offset` into `buf`. Any offset and length inside the region.
    pub read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *mut u8, len: u32) -> c_int,
    >,
    /// Programs `len` bytes from `buf` at `offset` (bits 1 -> 0 only; never twice between
    /// erases). `offset` and `len` are multiples of `SPOOL_FLASH_PROGRAM_ALIGN`; the range
    /// may cross the part's page boundaries.
    pub program: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u32, buf: *const u8, len: u32) -> c_int,
    >,
    /// Erases `len` bytes at `offset` to 0xFF: always exactly one erase unit
    /// (`len == erase_size`, `offset` a multiple of it).
    pub erase: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, len: u32) -> c_int>,
    /// Passed to the callbacks unchanged.
    pub ctx: *mut c_void,
    /// Region size in bytes.
    pub size: u32,
    /// Smallest programmable unit of the part (bytes).
    pub write_size: u32,
    /// Erase unit of the part (bytes).
    pub erase_size: u32,
}

/// Configuration for `spool_init`. Fill it with `spool_config_default` and change what you need.
///
/// Storage (ABI 2): at most one of `flash` (callbacks set) and `dir`; neither means RAM
/// only. With storage, RAM sectors spill to it from `process_memory` once
/// `flush_threshold_pct` of them are in use (and from a write that finds RAM full, instead
/// of dropping data), and records flushed before a reset are recovered (see `spool_recover`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SpoolConfig {
    /// Must be `SPOOL_ABI_VERSION` (2 is accepted too, with the version-2 EVT read default
    /// of one word; 1 as well: then only `flags` and `utc_now` are read, the store is RAM
    /// only and EVT reads default to one word).
    pub abi_version: u32,
    /// Bit set of `SPOOL_CFG_*` flags.
    pub flags: u32,
    /// Returns the current UTC time in seconds, or 0 when the clock is not synced (legacy
    /// `write_tsd_evt` then stores 0, "let the cloud assign"). May be NULL (always 0).
    /// Called outside the library's critical section.
    pub utc_now: Option<unsafe extern "C" fn() -> u32>,
    /// NOR flash region to spill into (callbacks NULL: none).
    pub flash: SpoolFlash,
    /// Host (`std`) builds only: directory to spill into (files of at most 64 KiB, 256 MiB
    /// in all, one subdirectory per upload source; created if missing), a NUL-terminated
    /// UTF-8 path, copied by `spool_init`. NULL: none. A `no_std` build rejects a non-NULL
    /// `dir` with `SPOOL_ERR_INVALID_ARGUMENT`.
    pub dir: *const c_char,
    /// RAM use (percent of the store's RAM sectors, 1..=100) at which `process_memory`
    /// spills to storage; 0 = default (80, as MM1).
    pub flush_threshold_pct: u32,
}

/// The fields of an ABI-1 `spool_config_t` (what a firmware built against version 1 passes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpoolConfigV1 {
    pub abi_version: u32,
    pub flags: u32,
    pub utc_now: Option<unsafe extern "C" fn() -> u32>,
}

impl SpoolFlash {
    /// No flash: every callback NULL.
    pub(crate) const NONE: SpoolFlash = SpoolFlash {
        read: None,
        program: None,
        erase: None,
        ctx: core::ptr::null_mut(),
        size: 0,
        write_size: 0,
        erase_size: 0,
    };
}

impl SpoolConfig {
    /// The default configuration (`spool_config_default`): no flags, no clock, RAM only.
    pub const fn default_config() -> SpoolConfig {
        SpoolConfig {
            abi_version: SPOOL_ABI_VERSION,
            flags: 0,
            utc_now: None,
            flash: SpoolFlash::NONE,
            dir: core::ptr::null(),
            flush_threshold_pct: 0,
        }
    }
}

/// What `spool_storage_stats` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStorageStats {
    /// `SPOOL_STORAGE_NONE`, `SPOOL_STORAGE_FLASH` or `SPOOL_STORAGE_FILES`.
    pub kind: u32,
    /// Recovery of the previous run's records (`spool_recover`): 0 not yet (or RAM only),
    /// 1 done, 2 failed (the storage was detached: RAM only from then on).
    pub recovered: u32,
    /// Unacknowledged records of the previous run recovered from storage (at the recovery,
    /// plus those of sensors registered after it).
    pub recovered_records: u32,
    /// Unacknowledged records now in storage (counted in `spool_store_stats_t.stored`).
    pub in_storage: u32,
    /// Records moved from RAM to storage (wrapping).
    pub flushed: u32,
    /// Batches appended (wrapping).
    pub batches: u32,
    /// Flushes the storage refused (the records stayed in RAM).
    pub errors: u32,
    /// Unacknowledged records lost in storage: evicted when it was full, or damaged
    /// (counted in `spool_store_stats_t.dropped`).
    pub lost: u32,
    /// Erase sectors of the flash log (files: 0).
    pub sectors: u32,
    /// Bytes per erase sector of the flash log (files: 0).
    pub sector_size: u32,
}

/// `spool_storage_stats_t.kind`: RAM only.
pub const SPOOL_STORAGE_NONE: u32 = 0;
/// `spool_storage_stats_t.kind`: a `spool_flash_t` region.
pub const SPOOL_STORAGE_FLASH: u32 = 1;
/// `spool_storage_stats_t.kind`: a spool directory (`dir`, host builds).
pub const SPOOL_STORAGE_FILES: u32 = 2;

/// Describes the firmware's csb and csd structs by `sizeof` / `offsetof` values, so the
/// library can read `id` / `sample_rate` and mirror counters without knowing the structs.
///
/// Field widths are fixed: `id`, `sample_rate`, `last_value` are `uint32_t`; `no_samples`,
/// `no_pending` are `uint16_t`; `last_sample_time` is 8 (`uint64_t` UTC ms, MM1) or 4
/// (`uint32_t` UTC s) bytes. Optional fields take `SPOOL_FIELD_ABSENT`. Fields may be
/// unaligned (accessed byte-wise); they must lie inside the struct, and the csd fields the
/// library writes must not overlap each other.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLayout {
    /// `sizeof(imx_control_sensor_block_t)`.
    pub csb_size: u32,
    /// `offsetof(imx_control_sensor_block_t, id)`.
    pub csb_id_offset: u32,
    /// `offsetof(imx_control_sensor_block_t, sample_rate)` (ms; 0 = event sensor, EVT).
    pub csb_sample_rate_offset: u32,
    /// `sizeof(control_sensor_data_t)`.
    pub csd_size: u32,
    /// `offsetof(control_sensor_data_t, no_samples)`.
    pub csd_no_samples_offset: u32,
    /// `offsetof(control_sensor_data_t, no_pending)`.
    pub csd_no_pending_offset: u32,
    /// `offsetof(control_sensor_data_t, last_sample_time)` or `SPOOL_FIELD_ABSENT`.
    pub csd_last_sample_time_offset: u32,
    /// `sizeof` the `last_sample_time` field: 8 (UTC ms) or 4 (UTC s); ignored when absent.
    pub csd_last_sample_time_size: u32,
    /// `offsetof(control_sensor_data_t, last_value)` or `SPOOL_FIELD_ABSENT`.
    pub csd_last_value_offset: u32,
    /// `offsetof(control_sensor_data_t, ds)` or `SPOOL_FIELD_ABSENT`
    /// (only used by `imx_init_data_store_entry`).
    pub csd_ds_offset: u32,
    /// `sizeof(data_store_info_t)`; ignored when `csd_ds_offset` is absent.
    pub csd_ds_size: u32,
}

/// Current position for legacy `add_gps_location`, filled by the firmware's callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpoolPosition {
    /// Degrees; 0 means "no fix" (then nothing is written, as in MM1).
    pub latitude: f32,
    /// Degrees; 0 means "no fix".
    pub longitude: f32,
    /// Metres.
    pub altitude: f32,
    /// Vehicle speed (written only when `speed_id` is configured).
    pub speed: f32,
}

/// GPS co-logging for legacy `write_tsd_evt(..., add_gps_location = true)`: the sensor ids
/// (`csb[i].id`) of the GPS entries and the position source.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SpoolGpsConfig {
    /// Id of the latitude sensor (`IMX_INTERNAL_SENSOR_GPS_LATITUDE`).
    pub latitude_id: u32,
    /// Id of the longitude sensor.
    pub longitude_id: u32,
    /// Id of the altitude sensor, or `SPOOL_ID_NONE`.
    pub altitude_id: u32,
    /// Id of the vehicle speed sensor (CAN builds), or `SPOOL_ID_NONE`.
    pub speed_id: u32,
    /// The position source; NULL disables GPS co-logging.
    /// Fill `*out` and return `true`, or return `false` when there is no position. Called
    /// outside the library's critical section, with `ctx`.
    pub get_position:
        Option<unsafe extern "C" fn(ctx: *mut c_void, out: *mut SpoolPosition) -> bool>,
    /// Passed to `get_position` unchanged.
    pub ctx: *mut c_void,
}

/// A sensor handle of the native API (from `spool_sensor_open`): `(source << 32) | id`,
/// valid for the life of the store.
pub type SpoolSensor = u64;

/// Record kind of the native API.
pub const SPOOL_KIND_TSD: u8 = 0;
/// Record kind of the native API.
pub const SPOOL_KIND_EVT: u8 = 1;

/// One record returned by `spool_read`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Timestamp in ms. EVT: the written UTC time, kept in whole seconds (so a multiple of
    /// 1000). TSD: derived from the time of the first sample of its RAM sector plus the
    /// sample rate (legacy TSD writes without a synced clock use time 0).
    pub time_ms: u64,
    /// The 32-bit sample value.
    pub value: u32,
    /// `SPOOL_KIND_TSD` or `SPOOL_KIND_EVT`.
    pub kind: u8,
}

/// Per-sensor counters (`spool_sensor_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolSensorStats {
    /// Records stored (read or not): legacy `no_samples`, unsaturated.
    pub stored: u32,
    /// Records read but not yet acknowledged: legacy `no_pending`, unsaturated.
    pub pending: u32,
    /// Records not yet read (`stored - pending`).
    pub available: u32,
    /// Records of this sensor lost to overflow (dropped or refused), saturating at 65535.
    pub lost: u32,
    /// Sample rate in ms (0 for EVT).
    pub sample_rate_ms: u32,
    /// `SPOOL_KIND_TSD` or `SPOOL_KIND_EVT`.
    pub kind: u8,
}

/// Whole-store counters. `written == acked + stored + dropped` always holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStoreStats {
    /// Sensors known to the store.
    pub sensors: u32,
    /// RAM sectors held by sensors.
    pub sectors_used: u32,
    /// RAM sectors in total.
    pub sectors_total: u32,
    /// Records stored (read or not).
    pub stored: u64,
    /// Records pending (read, not acknowledged).
    pub pending: u64,
    /// Records written (successful writes).
    pub written: u64,
    /// Records acknowledged (delivered).
    pub acked: u64,
    /// Records dropped: the overflow policy's drops of the oldest unsent data, plus records
    /// discarded by `reset_csd_entry`.
    pub dropped: u64,
    /// Writes refused because no RAM could be freed (every sector held pending data).
    pub refused: u64,
}

/// Counters of the C boundary itself (rejected calls by reason).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolFfiStats {
    /// Calls into the C API (all exported functions).
    pub calls: u64,
    /// Calls rejected with `SPOOL_ERR_NULL`.
    pub rejected_null: u64,
    /// Calls rejected with `SPOOL_ERR_NOT_INITIALIZED`.
    pub rejected_not_initialized: u64,
    /// Calls rejected with `SPOOL_ERR_NOT_REGISTERED`.
    pub rejected_not_registered: u64,
    /// Calls rejected with `SPOOL_ERR_INDEX`.
    pub rejected_index: u64,
    /// Calls rejected with `SPOOL_ERR_INVALID_ARGUMENT` / `BAD_LAYOUT` / `OVERLAP` /
    /// `REGISTRY_FULL` / `ALREADY_INITIALIZED` / `BAD_GEOMETRY` / `BUSY`.
    pub rejected_other: u64,
    /// Calls that reached the store and failed there (full, ack too many, storage, ...);
    /// `SPOOL_ERR_NO_DATA` is not counted.
    pub store_errors: u64,
    /// GPS records written by `add_gps_location`.
    pub gps_records: u64,
}

/// Counters of the `csd` mirrors (`spool_mirror_stats`, ABI 3).
///
/// The library writes `csd[e].no_samples` / `no_pending` of every registered entry whose
/// sensor changed, after every call. Before it changes a sensor, it reads the firmware's
/// `no_pending` of that sensor's entries: a value lowered by `k` below what the library
/// last wrote is honoured as MM1's "un-read" (the last `k` records handed out become
/// unsent again); a raised or otherwise impossible value is refused (the mirror is
/// written back) and counted here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolMirrorStats {
    /// Firmware-lowered `no_pending` values honoured (each made records unsent again).
    pub pending_lowered: u64,
    /// Records made unsent again by those lowerings.
    pub records_unread: u64,
    /// Firmware-written `no_pending` values refused: higher than the records handed out
    /// (a raise, or garbage), or a lowering the store could not apply. The mirror was
    /// written back; nothing was erased or handed out because of it.
    pub pending_refused: u64,
    /// Refreshes of every registered entry, after calls that changed the counters of
    /// sensors they did not name (storage eviction, recovery, a new sensor, spills, flush
    /// steps, an id changed at run time). An overflow drop of another sensor's records in
    /// RAM re-mirrors only that sensor's entries and is not counted here.
    pub refreshes: u64,
}

/// Everything `spool_stats` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// The store.
    pub store: SpoolStoreStats,
    /// The C boundary.
    pub ffi: SpoolFfiStats,
}

/// Statistics of one tier of the C block pool (`spool_pool_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolTierStats {
    /// Block size in bytes.
    pub block_size: u32,
    /// Number of blocks.
    pub capacity: u32,
    /// Blocks allocated now.
    pub in_use: u32,
    /// Highest `in_use` seen.
    pub peak: u32,
    /// Allocations that failed because the tier (and every larger one) was exhausted.
    pub failed_allocs: u32,
    /// Frees rejected as foreign or double.
    pub invalid_frees: u32,
    /// Allocations served by a larger tier because this one was full.
    pub fallbacks: u32,
}
