//! C ABI (feature `ffi`): the legacy iMatrix `write_tsd_evt` family as a drop-in, a
//! native `spool_*` API for new code, and a raw-pointer C block pool.
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
//!   into `csd[entry]` after every call that touches that entry. Mirrors saturate at
//!   `UINT16_MAX`, they never wrap.
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
mod legacy;
mod native;
mod pool_api;
mod state;
mod store;
mod types;

pub use legacy::*;
pub use native::*;
pub use pool_api::*;
pub use types::*;
