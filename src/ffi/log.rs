//! The log hook (`spool_set_log`): events as a code plus three small integers, never text,
//! so nothing is formatted in the library and a build without a hook pays one branch per
//! call. MM2 printed threshold messages; the `void` legacy calls report nothing else.

use super::state::{State, call};
use super::types::SpoolStatus;

/// Log level: storage failures.
pub const SPOOL_LOG_ERROR: u32 = 1;
/// Log level: data dropped or refused, rejected calls, RAM at the 80 % line or full.
pub const SPOOL_LOG_WARN: u32 = 2;
/// Log level: recovery results, RAM back under the 80 % line, statistics.
pub const SPOOL_LOG_INFO: u32 = 3;

/// Event (WARN): RAM use reached `SPOOL_LOG_THRESHOLD_PCT` of the sectors.
/// `a` = sectors used, `b` = sectors in total, `c` = percent used.
pub const SPOOL_LOG_EV_RAM_HIGH: u32 = 1;
/// Event (INFO): RAM use fell back under `SPOOL_LOG_THRESHOLD_PCT`. Arguments as for
/// `SPOOL_LOG_EV_RAM_HIGH`.
pub const SPOOL_LOG_EV_RAM_LOW: u32 = 2;
/// Event (WARN): a write was refused because RAM is full of pending records
/// (`SPOOL_ERR_FULL`). `a` = sectors in total.
pub const SPOOL_LOG_EV_RAM_FULL: u32 = 3;
/// Event (WARN): the overflow policy dropped the oldest unsent records of a sensor to make
/// room. `a` = drops since the last event (saturated at 255), `b` = sensor id, `c` = upload
/// source.
pub const SPOOL_LOG_EV_DROPPED: u32 = 4;
/// Event (WARN): a call was rejected and changed nothing. `a` = its `spool_status_t`,
/// `b` = a `SPOOL_LOG_REASON_*`, `c` = the reason's detail.
pub const SPOOL_LOG_EV_REJECTED: u32 = 5;
/// Event (ERROR): the storage (flash callbacks, spool directory) failed or is full; the
/// records stay in RAM. `a` = `SPOOL_ERR_STORAGE` or `SPOOL_ERR_NO_SPACE`.
pub const SPOOL_LOG_EV_STORAGE_ERROR: u32 = 6;
/// Event (INFO): recovery of the previous run's records ran. `a` = unacknowledged records
/// recovered, `b` = 0 on success, else the `spool_status_t` (the storage was detached).
pub const SPOOL_LOG_EV_RECOVERED: u32 = 7;
/// Event (INFO): `imx_print_memory_statistics` / `cli_memory_stats`. `a` = sectors used,
/// `b` = sectors in total, `c` = peak sectors used.
pub const SPOOL_LOG_EV_MEMORY_STATS: u32 = 8;

/// `SPOOL_LOG_EV_REJECTED` reason: none more precise than the status.
pub const SPOOL_LOG_REASON_NONE: u8 = 0;
/// `SPOOL_LOG_EV_REJECTED` reason: the MM2 call named another upload source than the
/// arrays' registration; `c` = the registered source.
pub const SPOOL_LOG_REASON_WRONG_SOURCE: u8 = 1;
/// `SPOOL_LOG_EV_REJECTED` reason: a legacy call passed element pointers (`&csb[k]`,
/// `&csd[k]`) with an index instead of the arrays' base; `c` = `k` (MM1 would have used
/// element `k + entry`).
pub const SPOOL_LOG_REASON_ELEMENT_POINTER: u8 = 2;
/// `SPOOL_LOG_EV_REJECTED` reason: the pointers belong to no registered array pair.
pub const SPOOL_LOG_REASON_UNREGISTERED: u8 = 3;

/// The RAM-use line of `SPOOL_LOG_EV_RAM_HIGH` / `SPOOL_LOG_EV_RAM_LOW`, in percent (MM2's
/// warning threshold).
pub const SPOOL_LOG_THRESHOLD_PCT: u32 = 80;

/// The hook: `level`, `event`, and the event's arguments `a`, `b`, `c`.
pub type SpoolLogFn = Option<unsafe extern "C" fn(level: u32, event: u32, a: u32, b: u32, c: u32)>;

/// Sets (or, with NULL, removes) the log hook: events of `level` or more severe
/// (`SPOOL_LOG_ERROR` 1 < `SPOOL_LOG_WARN` 2 < `SPOOL_LOG_INFO` 3) are passed to `callback`
/// as an event code and three integers (see `SPOOL_LOG_EV_*`); nothing is formatted. The
/// callback runs inside the library's critical section, at the end of the call that caused
/// the event: keep it short (e.g. copy into a ring buffer), do not call the library from it
/// (that gets `SPOOL_ERR_BUSY`). Works before `spool_init` and survives `spool_deinit`.
/// `SPOOL_ERR_INVALID_ARGUMENT` for a level outside 1..=3 (nothing changed).
#[unsafe(no_mangle)]
pub extern "C" fn spool_set_log(callback: SpoolLogFn, level: u32) -> SpoolStatus {
    if !(SPOOL_LOG_ERROR..=SPOOL_LOG_INFO).contains(&level) {
        return SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT;
    }
    let r = call(|st| {
        st.log = callback.map(|f| (f, level as u8));
        st.log_high = false;
        st.log_drops = st.store.last_drop().0;
        Ok(())
    });
    match r {
        Ok(()) => SpoolStatus::SPOOL_OK,
        Err(e) => e,
    }
}

impl State {
    /// Emits one event if the hook is set and wants `level`.
    pub(crate) fn emit(&self, level: u32, event: u32, a: u32, b: u32, c: u32) {
        if let Some((f, max)) = self.log
            && level <= u32::from(max)
        {
            // SAFETY: the firmware registered `f` with `spool_set_log`, documented as
            // callable inside the library's critical section with these arguments.
            unsafe { f(level, event, a, b, c) };
        }
    }

    /// Notes why the call is being rejected (for `SPOOL_LOG_EV_REJECTED`).
    pub(crate) fn reject_reason(&mut self, reason: u8, detail: u16) {
        self.log_reason = (reason, detail);
    }

    /// The events of a finished call (only with a hook set).
    pub(crate) fn log_call(&mut self, status: SpoolStatus) {
        use SpoolStatus::*;
        let (reason, detail) = core::mem::take(&mut self.log_reason);
        match status {
            SPOOL_OK | SPOOL_ERR_NO_DATA => {}
            SPOOL_ERR_STORAGE | SPOOL_ERR_NO_SPACE => self.emit(
                SPOOL_LOG_ERROR,
                SPOOL_LOG_EV_STORAGE_ERROR,
                status as u32,
                0,
                0,
            ),
            SPOOL_ERR_FULL => {
                let t = self.store.stats().sectors_total;
                self.emit(SPOOL_LOG_WARN, SPOOL_LOG_EV_RAM_FULL, t, 0, 0);
            }
            _ => self.emit(
                SPOOL_LOG_WARN,
                SPOOL_LOG_EV_REJECTED,
                status as u32,
                u32::from(reason),
                u32::from(detail),
            ),
        }
        if !self.initialized {
            return;
        }
        let (drops, key) = self.store.last_drop();
        if drops != self.log_drops {
            let n = u32::from(drops.wrapping_sub(self.log_drops));
            self.log_drops = drops;
            let (id, src) = key.map_or((0, 0), |k| (k.id, u32::from(k.source)));
            self.emit(SPOOL_LOG_WARN, SPOOL_LOG_EV_DROPPED, n, id, src);
        }
        let s = self.store.stats();
        let pct = u64::from(s.sectors_used) * 100 / u64::from(s.sectors_total.max(1));
        let pct = u32::try_from(pct).unwrap_or(100);
        let high = pct >= SPOOL_LOG_THRESHOLD_PCT;
        if high != self.log_high {
            self.log_high = high;
            let (level, ev) = if high {
                (SPOOL_LOG_WARN, SPOOL_LOG_EV_RAM_HIGH)
            } else {
                (SPOOL_LOG_INFO, SPOOL_LOG_EV_RAM_LOW)
            };
            self.emit(level, ev, s.sectors_used, s.sectors_total, pct);
        }
    }
}

/// `SPOOL_LOG_EV_MEMORY_STATS` with the statistics `imx_get_memory_statistics` shows.
pub(crate) fn memory_stats(used: u32, total: u32, peak: u32) {
    let _ = call(|st| {
        st.emit(SPOOL_LOG_INFO, SPOOL_LOG_EV_MEMORY_STATS, used, total, peak);
        Ok(())
    });
}
