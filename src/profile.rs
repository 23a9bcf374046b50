//! Platform profiles: the store's geometry as data (const parameters), not code paths.
//!
//! | profile | RAM budget | sector | sectors | sensors | rates | overflow |
//! |---|---|---|---|---|---|---|
//! | [`WicedSpool`] | 12 KiB (pool + side table + sensor table + state) | 32 B | [`WICED_SECTORS`] | [`WICED_SENSORS`] | 8 | drop oldest unsent |
//! | [`LinuxSpool`] | 64 KiB | 64 B | [`LINUX_SECTORS`] | 1,664 (128 host + 1,536 CAN) | 32 | drop oldest unsent |
//!
//! Per stored TSD sample at the WICED profile: a 32-byte sector holds 8 samples and
//! nothing else; the side table adds 3 bytes per sector and the pool bitmap 1 bit, so
//! `(32 + 3 + 0.125) / 8 = 4.39` bytes per sample (legacy: 32-byte sectors of 6 samples,
//! 5.33 B). Every sensor costs one 24-byte table entry ([`crate::spool::ENTRY_SIZE`]):
//! id 4, sequence numbers 12, ring head/tail + 8 anchor bits 4, source 1, rate index 1,
//! lost counter 2. [`Footprint`] computes the figures; `tests/profile.rs` prints and
//! asserts them.
#![forbid(unsafe_code)]

use crate::pool::{Pool, Tier, TierSpec};
use crate::ram::{self, SectorPool};
use crate::record::Kind;
use crate::sensor::OverflowPolicy;
use crate::spool::{ENTRY_SIZE, RamOnly, Spool};

/// WICED-like: sectors of 32 bytes.
pub const WICED_SECTOR: usize = 32;
/// WICED-like: number of RAM sectors.
pub const WICED_SECTORS: usize = 308;
/// WICED-like: sensor slots.
pub const WICED_SENSORS: usize = 48;
/// WICED-like: distinct TSD sample rates.
pub const WICED_RATES: usize = 8;
/// WICED-like pool: tier 0 holds the store's sectors, the other tiers are empty.
pub type WicedPool = Pool<
    Tier<WICED_SECTOR, WICED_SECTORS, { WICED_SECTORS.div_ceil(32) }>,
    Tier<64, 0, 0>,
    Tier<128, 0, 0>,
>;
/// WICED-like spool (RAM only).
pub type WicedSpool = Spool<WicedPool, WICED_SENSORS, WICED_SECTORS, WICED_RATES>;
/// An empty WICED-like spool (`const`: usable to initialise a `static`).
pub const fn wiced() -> WicedSpool {
    Spool::new(WicedPool::new(), RamOnly, OverflowPolicy::DropOldestUnsent)
}

/// Linux-like: sectors of 64 bytes.
pub const LINUX_SECTOR: usize = 64;
/// Linux-like: number of RAM sectors.
pub const LINUX_SECTORS: usize = 376;
/// Linux-like: sensor slots (128 host + 1,536 CAN).
pub const LINUX_SENSORS: usize = 128 + 1536;
/// Linux-like: distinct TSD sample rates.
pub const LINUX_RATES: usize = 32;
/// Linux-like pool: tier 0 holds the store's sectors, the other tiers are empty.
pub type LinuxPool = Pool<
    Tier<LINUX_SECTOR, LINUX_SECTORS, { LINUX_SECTORS.div_ceil(32) }>,
    Tier<128, 0, 0>,
    Tier<256, 0, 0>,
>;
/// Linux-like spool (RAM only for now).
pub type LinuxSpool = Spool<LinuxPool, LINUX_SENSORS, LINUX_SECTORS, LINUX_RATES>;
/// An empty Linux-like spool.
pub const fn linux() -> LinuxSpool {
    Spool::new(LinuxPool::new(), RamOnly, OverflowPolicy::DropOldestUnsent)
}

// The budgets hold on every target (checked at compile time, host and embedded).
const _: () = assert!(core::mem::size_of::<WicedSpool>() <= 12 * 1024);
const _: () = assert!(core::mem::size_of::<LinuxSpool>() <= 64 * 1024);

/// RAM figures of one spool geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Footprint {
    /// Bytes per sector.
    pub sector_size: usize,
    /// Sectors in the tier.
    pub sectors: usize,
    /// Sensor slots.
    pub sensors: usize,
    /// TSD samples that fit (all sectors full of TSD).
    pub tsd_capacity: usize,
    /// EVT records that fit.
    pub evt_capacity: usize,
    /// RAM bytes per stored TSD sample: (sector + 3-byte side entry + 1/8 bitmap byte)
    /// / samples per sector.
    pub bytes_per_tsd_sample: f64,
    /// RAM bytes per stored EVT record, same accounting.
    pub bytes_per_evt: f64,
    /// Metadata bytes per sensor (the table entry).
    pub bytes_per_sensor: usize,
    /// `size_of` the whole spool (pool, side table, sensor table, state) on this target.
    pub total_bytes: usize,
}

/// Footprint of a spool type `Spool<Pool<T0, M, L>, SENSORS, SECTORS, RATES>`.
pub fn footprint<
    T0: TierSpec,
    M: TierSpec,
    L: TierSpec,
    const SN: usize,
    const SC: usize,
    const R: usize,
>() -> Footprint {
    let ss = <Pool<T0, M, L> as SectorPool>::SECTOR_SIZE;
    let per = |k: Kind| ram::per_sector(ss, k) as usize;
    let unit = ss as f64 + 3.0 + 0.125;
    Footprint {
        sector_size: ss,
        sectors: SC,
        sensors: SN,
        tsd_capacity: SC * per(Kind::Tsd),
        evt_capacity: SC * per(Kind::Evt),
        bytes_per_tsd_sample: unit / per(Kind::Tsd) as f64,
        bytes_per_evt: unit / per(Kind::Evt) as f64,
        bytes_per_sensor: ENTRY_SIZE,
        total_bytes: core::mem::size_of::<Spool<Pool<T0, M, L>, SN, SC, R>>(),
    }
}
