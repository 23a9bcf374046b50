//! iMatrix source-level types of the MM1 / MM2 façade: `imx_result_t` (with iMatrix's
//! numbers, overridable at run time), `imx_data_32_t` passed by value, the MM2 structs
//! (`tsd_evt_value_t`, `tsd_evt_data_t`, `mm2_stats_t`, `mm2_sensor_state_t`) and MM1's
//! `imx_memory_statistics_t`.
//!
//! The types of iMatrix's own `common.h` (`imx_result_t`, `imx_data_32_t`,
//! `imatrix_upload_source_t`, `imx_utc_time_ms_t`, `imx_time_t`, the csb / csd typedefs) are
//! not defined by the generated header: the firmware's `common.h` defines them (define
//! `SPOOL_HAVE_IMATRIX_COMMON` and include it first), or `include/imatrix_compat.h` does for
//! code without one. The generated header declares the MM2 functions only when one of the two
//! is in effect.

use core::sync::atomic::{AtomicI32, Ordering};

use super::types::{ControlSensorBlock, ControlSensorData, SpoolStatus};

/// MM2 `imx_result_t`: an `int`-sized iMatrix result code. The library returns the
/// numbers of `spool_imx_codes_t` (defaults: the values of `include/imatrix_compat.h`; a
/// firmware with its own `common.h` passes its enum's values to `spool_imx_set_codes`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImxResult(pub i32);

/// iMatrix `imatrix_upload_source_t` (an `int`-sized enum; `IMX_UPLOAD_GATEWAY` = 0).
pub type ImxUploadSource = u32;

/// iMatrix `imx_utc_time_ms_t`: milliseconds since 1970.
pub type ImxUtcTimeMs = u64;

/// iMatrix `imx_time_t`: milliseconds since boot.
pub type ImxTime = u32;

/// iMatrix `imx_control_sensor_block_t` (`struct control_sensor_block`).
pub type ImxControlSensorBlock = ControlSensorBlock;

/// iMatrix `control_sensor_data_t` (`struct control_sensor_data`).
pub type ControlSensorDataT = ControlSensorData;

/// Opaque stand-in for iMatrix's `var_data_entry_t` (only pointed to by `imx_data_32_t`).
#[repr(C)]
pub struct VarDataEntry {
    _opaque: [u8; 0],
}

/// iMatrix `imx_data_32_t`, the typedef of `union data_32` ([`Data32`]).
pub type ImxData32 = Data32;

/// iMatrix `union data_32` (`imx_data_32_t`): 4 bytes on 32-bit targets, 8 on 64-bit ones
/// (its `var_data` pointer). Passed by value as MM2 does; the library stores `uint_32bit`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Data32 {
    /// Unsigned view.
    pub uint_32bit: u32,
    /// Signed view.
    pub int_32bit: i32,
    /// Float view.
    pub float_32bit: f32,
    /// Variable-length record (not stored by this library).
    pub var_data: *mut VarDataEntry,
}

impl Data32 {
    /// The 32 value bits (`uint_32bit`), whichever member the caller set.
    pub fn bits(self) -> u32 {
        // SAFETY: every member starts at offset 0 and is at least 4 bytes wide; reading the
        // first 4 bytes as `u32` is valid for any bit pattern the caller stored through
        // `uint_32bit`, `int_32bit`, `float_32bit` (or the low half of a pointer).
        unsafe { self.uint_32bit }
    }

    /// A value from its 32 bits.
    pub const fn from_bits(v: u32) -> Data32 {
        Data32 { uint_32bit: v }
    }
}

/// One sample of `imx_read_bulk_samples` (MM2 `tsd_evt_value_t`, MQR layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsdEvtValue {
    /// The 32-bit sample value (`imx_data_32_t` bits).
    pub value: u32,
    /// UTC time in ms: the event's time (whole seconds), or the TSD sample's time derived
    /// from its sector's first sample and the sample rate (0-based when the clock was not
    /// synced at the first sample).
    pub timestamp: u64,
}

/// One record of `imx_read_next_tsd_evt` / `imx_peek_next_tsd_evt` (MM2 `tsd_evt_data_t`,
/// the v2.8 quick-reference form `{uint32_t value; uint64_t utc_time_ms;}` that MM2 call
/// sites compare with a `uint32_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsdEvtData {
    /// The 32-bit sample value.
    pub value: u32,
    /// UTC time in ms (as `tsd_evt_value_t.timestamp`).
    pub utc_time_ms: u64,
}

/// `imx_get_memory_stats` (MM2 `mm2_stats_t`, MQR / MTD layout with `chain_operations`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mm2Stats {
    /// RAM sectors of the store.
    pub total_sectors: u32,
    /// RAM sectors not holding records.
    pub free_sectors: u32,
    /// Sensors known to the store.
    pub active_sensors: u32,
    /// Records written since init (every API).
    pub total_allocations: u64,
    /// Writes refused because no RAM could be freed (every sector held pending data).
    pub allocation_failures: u64,
    /// Records dropped by the overflow policy (oldest unsent data) plus records discarded
    /// by `reset_csd_entry` (MM2 counted sector-chain operations; there is no chain table).
    pub chain_operations: u64,
    /// Record payload bytes (4 per TSD sample, 8 per event) as a percentage of the bytes
    /// of the RAM sectors in use (100 when no sector is in use).
    pub space_efficiency_percent: u32,
}

/// Number of per-source pending counts in `mm2_sensor_state_t` (MM2's `UPLOAD_SOURCE_MAX`
/// is not known; sources 0..8 are reported, higher ones are not).
pub const SPOOL_MM2_UPLOAD_SOURCES: usize = 8;

/// `imx_get_sensor_state` (MM2 `mm2_sensor_state_t`, MQR layout with Linux's 32-bit sector
/// ids). There are no sector chains: the sector and offset fields are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mm2SensorState {
    /// `csb->id`.
    pub sensor_id: u32,
    /// 1 when the store knows the sensor (MM2's `unsigned int active:1`; bit 0 of this word).
    pub active: u32,
    /// Always 0 (no sector chains).
    pub ram_start_sector: u32,
    /// Always 0 (no sector chains).
    pub ram_end_sector: u32,
    /// Always 0 (no sector chains).
    pub ram_read_offset: u16,
    /// Always 0 (no sector chains).
    pub ram_write_offset: u16,
    /// Records stored (RAM and storage, pending or not).
    pub total_records: u64,
    /// UTC ms of the last record written through the MM2 or legacy API (0 if unknown).
    pub last_sample_time: u64,
    /// Pending records per upload source (only the sensor's own source is non-zero).
    pub pending_counts: [u32; SPOOL_MM2_UPLOAD_SOURCES],
}

/// MM1 `imx_memory_statistics_t` (the 12-member version 2025 test code compiled against).
/// "Sectors" are the store's RAM sectors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImxMemoryStatistics {
    /// RAM sectors in total.
    pub total_sectors: u32,
    /// RAM sectors not holding records (same as `free_sectors`).
    pub available_sectors: u32,
    /// RAM sectors holding records.
    pub used_sectors: u32,
    /// RAM sectors not holding records.
    pub free_sectors: u32,
    /// Highest `used_sectors` seen by `imx_update_memory_statistics` since init.
    pub peak_usage: u32,
    /// Records written (saturated at `UINT32_MAX`).
    pub allocation_count: u32,
    /// Records acknowledged or dropped (saturated).
    pub deallocation_count: u32,
    /// Writes refused because RAM was full of pending data (saturated).
    pub allocation_failures: u32,
    /// Always 0: records are packed per sensor, there is no fragmentation to report.
    pub fragmentation_level: u32,
    /// `used_sectors` as a percentage of `total_sectors`.
    pub usage_percentage: f32,
    /// `peak_usage` as a percentage of `total_sectors`.
    pub peak_usage_percentage: f32,
    /// UTC seconds (the `utc_now` hook) at the last update; 0 when not synced.
    pub last_updated: u32,
}

/// The `imx_result_t` numbers the MM2 functions return (`spool_imx_set_codes`). Each field
/// is the firmware's value of the iMatrix enumerator of the same name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolImxCodes {
    /// `IMX_SUCCESS` (0 in every known iMatrix version).
    pub success: i32,
    /// `IMX_NO_DATA`: nothing to read.
    pub no_data: i32,
    /// `IMX_INVALID_PARAMETER`: NULL pointer, argument out of range.
    pub invalid_parameter: i32,
    /// `IMX_INVALID_ENTRY`: csb / csd not a registered element pair, wrong upload source,
    /// TSD / EVT mismatch, unknown sensor.
    pub invalid_entry: i32,
    /// `IMX_INIT_ERROR`: called before init.
    pub init_error: i32,
    /// `IMX_OUT_OF_MEMORY`: the store, its sensor table or the registry is full.
    pub out_of_memory: i32,
    /// `IMX_FILE_ERROR`: storage (flash or spool directory) failed or is full.
    pub file_error: i32,
    /// `IMX_GENERAL_FAILURE`: any other error (the precise one is in `spool_last_status`).
    pub general_failure: i32,
}

/// The default numbers (the values of `include/imatrix_compat.h`).
const DEFAULT_CODES: [i32; 8] = [0, 34, 56, 1, 8, 14, 54, 7];

/// The numbers in use, in `SpoolImxCodes` field order.
static CODES: [AtomicI32; 8] = [
    AtomicI32::new(DEFAULT_CODES[0]),
    AtomicI32::new(DEFAULT_CODES[1]),
    AtomicI32::new(DEFAULT_CODES[2]),
    AtomicI32::new(DEFAULT_CODES[3]),
    AtomicI32::new(DEFAULT_CODES[4]),
    AtomicI32::new(DEFAULT_CODES[5]),
    AtomicI32::new(DEFAULT_CODES[6]),
    AtomicI32::new(DEFAULT_CODES[7]),
];

/// The slot of `CODES` a status maps to.
fn slot(s: SpoolStatus) -> usize {
    use SpoolStatus::*;
    match s {
        SPOOL_OK => 0,
        SPOOL_ERR_NO_DATA => 1,
        SPOOL_ERR_NULL | SPOOL_ERR_INVALID_ARGUMENT | SPOOL_ERR_INDEX => 2,
        SPOOL_ERR_NOT_REGISTERED
        | SPOOL_ERR_UNKNOWN_SENSOR
        | SPOOL_ERR_SOURCE_MISMATCH
        | SPOOL_ERR_CONFLICT => 3,
        SPOOL_ERR_NOT_INITIALIZED => 4,
        SPOOL_ERR_FULL | SPOOL_ERR_TABLE_FULL | SPOOL_ERR_REGISTRY_FULL | SPOOL_ERR_EXHAUSTED => 5,
        SPOOL_ERR_STORAGE | SPOOL_ERR_NO_SPACE => 6,
        _ => 7,
    }
}

/// The iMatrix result code of a status.
pub(crate) fn imx_of(s: SpoolStatus) -> ImxResult {
    ImxResult(CODES.get(slot(s)).map_or(-1, |c| c.load(Ordering::Relaxed)))
}

/// The `imx_result_t` number the MM2 functions return for a status, with the numbers
/// currently set (`spool_imx_set_codes`). Rust-side helper, not part of the C ABI.
pub fn imx_code(s: SpoolStatus) -> ImxResult {
    imx_of(s)
}

/// The iMatrix result code of a call's outcome.
pub(crate) fn imx_result(r: Result<(), SpoolStatus>) -> ImxResult {
    imx_of(match r {
        Ok(()) => SpoolStatus::SPOOL_OK,
        Err(e) => e,
    })
}

/// Sets the `imx_result_t` numbers the MM2 functions return, so that they equal the
/// enumerators of the firmware's own `common.h` (the iMatrix numbering changed between
/// versions: `IMX_NO_DATA` was 22 in 2018 and is 34 in 2025 device logs). With
/// `include/imatrix_compat.h`'s enum, or a `common.h` defining the same names,
/// `SPOOL_IMX_CODES_FROM_ENUM` fills the struct from the enumerators in scope:
/// `spool_imx_codes_t c = SPOOL_IMX_CODES_FROM_ENUM; spool_imx_set_codes(&c);`.
/// NULL restores the defaults. `SPOOL_ERR_INVALID_ARGUMENT` (nothing changed) when two
/// fields share a number or `success` is not 0. Works before `spool_init` and survives
/// `spool_deinit`; not counted in the call statistics.
///
/// # Safety
///
/// `codes` must be NULL or point at a readable `spool_imx_codes_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_imx_set_codes(codes: *const SpoolImxCodes) -> SpoolStatus {
    let v = if codes.is_null() {
        DEFAULT_CODES
    } else {
        // SAFETY: non-NULL and readable per the contract; read by value, unaligned-safe.
        let c = unsafe { codes.read_unaligned() };
        [
            c.success,
            c.no_data,
            c.invalid_parameter,
            c.invalid_entry,
            c.init_error,
            c.out_of_memory,
            c.file_error,
            c.general_failure,
        ]
    };
    if v[0] != 0 {
        return SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT;
    }
    for (i, a) in v.iter().enumerate() {
        if v.iter().skip(i + 1).any(|b| b == a) {
            return SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT;
        }
    }
    for (c, x) in CODES.iter().zip(v) {
        c.store(x, Ordering::Relaxed);
    }
    SpoolStatus::SPOOL_OK
}

/// Copies the `imx_result_t` numbers in use into `*out`. `SPOOL_ERR_NULL`.
///
/// # Safety
///
/// `out` must be NULL or writable for one `spool_imx_codes_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_imx_codes(out: *mut SpoolImxCodes) -> SpoolStatus {
    if out.is_null() {
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    let g = |i: usize| CODES.get(i).map_or(-1, |c| c.load(Ordering::Relaxed));
    let c = SpoolImxCodes {
        success: g(0),
        no_data: g(1),
        invalid_parameter: g(2),
        invalid_entry: g(3),
        init_error: g(4),
        out_of_memory: g(5),
        file_error: g(6),
        general_failure: g(7),
    };
    // SAFETY: non-NULL and writable per the contract.
    unsafe { out.write_unaligned(c) };
    SpoolStatus::SPOOL_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_mm2() {
        use core::mem::{offset_of, size_of};
        // tsd_evt_value_t / tsd_evt_data_t { uint32_t; uint64_t; }: 16 bytes on 64-bit hosts
        // and on 32-bit ARM EABI / RISC-V (u64 is 8-aligned there too); not on i386.
        assert_eq!(size_of::<TsdEvtValue>(), 16);
        assert_eq!(offset_of!(TsdEvtValue, timestamp), 8);
        assert_eq!(offset_of!(TsdEvtData, utc_time_ms), 8);
        assert_eq!(size_of::<ImxData32>(), size_of::<usize>().max(4));
        assert_eq!(size_of::<ImxMemoryStatistics>(), 48);
    }

    #[test]
    fn default_codes_are_distinct_and_mapped() {
        assert_eq!(imx_of(SpoolStatus::SPOOL_OK), ImxResult(0));
        assert_eq!(imx_of(SpoolStatus::SPOOL_ERR_NO_DATA), ImxResult(34));
        assert_eq!(imx_of(SpoolStatus::SPOOL_ERR_STORAGE), ImxResult(54));
        assert_eq!(imx_of(SpoolStatus::SPOOL_ERR_CORRUPTED), ImxResult(7));
    }
}
