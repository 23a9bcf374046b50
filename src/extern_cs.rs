//! Critical section provided by the firmware through two C hooks.
//!
//! The firmware defines
//! `uint32_t spool_cs_acquire(void)` (disable interrupts, return the previous state) and
//! `void spool_cs_release(uint32_t state)` (restore that state).

struct ExternCs;
critical_section::set_impl!(ExternCs);

unsafe extern "C" {
    fn spool_cs_acquire() -> u32;
    fn spool_cs_release(state: u32);
}

// SAFETY: the firmware's hooks disable and restore interrupts (or take a lock), which is
// exactly the contract of `critical_section::Impl`; nesting is handled by the restore state.
unsafe impl critical_section::Impl for ExternCs {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        // SAFETY: a plain C call with no arguments; the firmware guarantees the hook exists.
        unsafe { spool_cs_acquire() }
    }

    unsafe fn release(state: critical_section::RawRestoreState) {
        // SAFETY: `state` is the value the matching `spool_cs_acquire` returned.
        unsafe { spool_cs_release(state) }
    }
}
