//! C ABI (feature `ffi`): the legacy iMatrix `write_tsd_evt` family as a drop-in, a
//! native `spool_*` API for new code, and a raw-pointer C block pool. Also: the MM2 façade
//! (`imx_write_tsd`, `imx_read_bulk_samples`, ..., see `mm2.rs`) on the same store, the
//! pool queries of the optional malloc wrapper (`c/spool_malloc_wrap.c`), and diagnostics
//! (`spool_version`, `spool_version_numbers`, `spool_dump`, see `diag.rs`).
//!
//! The generated header is `include/sensor_spool.h` (cbindgen, see `cbindgen.toml`).
//!
//! # Model
//!
//! * One global store lives in a `static` behind `critical_section::Mutex<RefCell<_>>`;
//!   every exported function takes the critical section for the duration of the call
//!   (firmware callbacks are called *outside* it). No `static mut`.
//! * The firmware keeps its own `struct control_sensor_block` / `struct control_sensor_data`
//!   arrays. It describes them once with `spool_layout_t` (`sizeof` / `offsetof` values) in
//!   `spool_register_sensors`; the library never hard-codes those layouts, bounds-checks every
//!   `entry` against the registered count, reads `id` / `sample_rate` from `csb[entry]`, and
//!   mirrors `no_samples` / `no_pending` (and `last_value` / `last_sample_time` where present)
//!   into `csd[entry]` after every call that touches that entry, and into every other entry
//!   whose sensor changed: entries sharing the sensor id, and, when a call changed sensors
//!   it did not name (an overflow drop of another sensor, a storage eviction, a recovery,
//!   a new sensor), every registered entry (detected in O(1) per call from the store's
//!   counters, see `state::State::settle`). Mirrors saturate at `UINT16_MAX`, they never wrap.
//! * Before a call changes a sensor, the firmware's `no_pending` of its entries is read: a
//!   value lowered by `k` is MM1's un-read (the last `k` records handed out become unsent
//!   again; the next read returns the record at the new offset), a raised one is refused
//!   and counted (`spool_mirror_stats`). `erase_tsd_evt` keeps reading it as its count.
//! * Status codes are `spool_status_t`, a fixed-value enum (`SPOOL_OK == 0`). Out-parameters
//!   are written only on success (the documented exception: legacy `read_tsd_evt` stores 0
//!   when there is nothing to read, as MM1 did).
//! * The `void` legacy functions cannot report errors: a rejected call (NULL pointer,
//!   unregistered array, `entry` or `no_items` past the registration, call before init, ...)
//!   is a no-op that leaves the store untouched, is counted in `spool_ffi_stats_t` and is
//!   available as `spool_last_status`.
//! * Nothing panics across the boundary: no indexing that can panic, no `unwrap`, checked
//!   arithmetic, and a re-entrant call (e.g. from a callback) gets `SPOOL_ERR_BUSY`.

mod flash;

mod diag;
mod features;
mod imx;
mod legacy;
mod log;
mod mm1;
mod mm2;
mod native;
mod pool_api;
mod state;
mod store;
mod types;

pub use diag::*;
pub use features::*;
pub use imx::*;
pub use legacy::*;
pub use log::*;
pub use mm1::*;
pub use mm2::*;
pub use native::*;
pub use pool_api::*;
pub use types::*;
