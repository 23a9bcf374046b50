//! # sensor-spool
//!
//! A `no_std`, allocation-free store-and-forward spool for sensor samples: per-sensor
//! time series (TSD) and events (EVT) wait in fixed RAM rings drawn from a three-tier
//! bitmap block pool until an uploader has delivered them, spill in batches to NOR
//! flash or files when RAM fills up, and survive power cuts. A C ABI keeps the legacy
//! iMatrix `write_tsd_evt` / `read_tsd_evt` / `erase_tsd_evt` API.
//!
//! Layers, bottom to top: [`pool`], [`record`], [`sensor`], [`ram`], [`storage`],
//! [`spool`], and (feature `ffi`) `ffi`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

// Exactly one critical-section provider per build graph: say so plainly instead of the
// critical-section crate's restore-state error or a duplicate-symbol link error.
#[cfg(any(
    all(
        feature = "std",
        any(feature = "extern-cs", feature = "cortex-m-cs", feature = "riscv-cs")
    ),
    all(
        feature = "extern-cs",
        any(feature = "cortex-m-cs", feature = "riscv-cs")
    ),
    all(feature = "cortex-m-cs", feature = "riscv-cs"),
))]
compile_error!(
    "choose one critical-section provider: std (default), extern-cs, cortex-m-cs or riscv-cs; \
     the no_std ones need --no-default-features"
);

// The critical-section implementations live in crates that are otherwise unused;
// without a reference the linker drops them and the acquire/release symbols stay
// undefined in the static library.
#[cfg(feature = "cortex-m-cs")]
use cortex_m as _;
#[cfg(feature = "riscv-cs")]
use riscv as _;

pub mod pool;
pub mod profile;
pub mod ram;
pub mod record;
pub mod sensor;
pub mod spool;
pub mod storage;

#[cfg(feature = "ffi")]
pub mod ffi;

#[cfg(feature = "extern-cs")]
mod extern_cs;

/// Parks the core on a panic. Only the C static library enables this; a Rust
/// firmware brings its own handler. The library is written to be panic-free on
/// every path reachable from the C API, so this is a last line of defence.
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// The Rust blocks of the Markdown documentation run as doctests (`cargo test --doc`, CI
// stage `docs`: scripts/check-docs.sh). Compiled only by rustdoc's test harness.
#[cfg(doctest)]
mod docs_md {
    #[doc = include_str!("../README.md")]
    mod readme {}
    #[doc = include_str!("../docs/architecture.md")]
    mod architecture {}
}
