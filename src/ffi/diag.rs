//! Diagnostics: the library version (`spool_version`, `spool_version_numbers`) and a
//! human-readable dump of the store, the C pool and the boundary counters (`spool_dump`,
//! the equivalent of the legacy `--memory-stats` / `print_sat` output).
//!
//! No `printf` and no `core::fmt`: each line is built in a fixed stack buffer by a small
//! hand-written integer formatter ([`Line`]), which keeps the code size down on Cortex-M.

use super::pool_api::{pool_stray_frees, pool_tier_stats};
use super::state::{State, call, peek};
use super::types::{
    FfiResult, SPOOL_ABI_VERSION, SPOOL_KIND_EVT, SPOOL_POOL_TIERS, SpoolStatus, status_of,
};
use core::ffi::{c_char, c_void};

/// `CARGO_PKG_VERSION` with a terminating NUL, for `spool_version`.
const VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Parses a decimal `u32` at compile time (the version components from Cargo).
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v: u32 = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// Major version of the crate (Cargo.toml).
const MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));
/// Minor version of the crate (Cargo.toml).
const MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));
/// Patch version of the crate (Cargo.toml).
const PATCH: u32 = parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

/// The library version as a NUL-terminated string, `"MAJOR.MINOR.PATCH"` (the crate
/// version of Cargo.toml, e.g. `"0.1.0"`). Static storage: never free it. Works before
/// `spool_init`, from any thread; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_version() -> *const c_char {
    VERSION_C.as_ptr().cast::<c_char>()
}

/// Stores the library version's components (Cargo.toml) in `*major`, `*minor`, `*patch`.
/// `SPOOL_ERR_NULL` if any pointer is NULL (then nothing is written). Works before
/// `spool_init`; counted.
///
/// # Safety
///
/// Each pointer must be NULL or valid for writing one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_version_numbers(
    major: *mut u32,
    minor: *mut u32,
    patch: *mut u32,
) -> SpoolStatus {
    status_of(call(|_| {
        if major.is_null() || minor.is_null() || patch.is_null() {
            return Err(SpoolStatus::SPOOL_ERR_NULL);
        }
        // SAFETY: all three are non-NULL and writable per the contract.
        unsafe {
            major.write_unaligned(MAJOR);
            minor.write_unaligned(MINOR);
            patch.write_unaligned(PATCH);
        }
        Ok(())
    }))
}

/// Capacity of one dump line (the longest line the dump produces is about 140 bytes).
const LINE_CAP: usize = 192;

/// One output line in a fixed buffer: appends text and decimal integers, silently
/// truncating at [`LINE_CAP`] - 1 bytes (room is kept for a terminating NUL).
pub(crate) struct Line {
    buf: [u8; LINE_CAP],
    len: usize,
}

impl Line {
    /// An empty line.
    pub(crate) const fn new() -> Line {
        Line {
            buf: [0; LINE_CAP],
            len: 0,
        }
    }

    /// Appends bytes (truncating).
    fn bytes(&mut self, s: &[u8]) -> &mut Line {
        for &c in s {
            // Keep the last byte for the NUL.
            if self.len + 1 >= LINE_CAP {
                break;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = c;
                self.len += 1;
            }
        }
        self
    }

    /// Appends a string.
    pub(crate) fn s(&mut self, s: &str) -> &mut Line {
        self.bytes(s.as_bytes())
    }

    /// Appends an unsigned integer in decimal.
    pub(crate) fn n(&mut self, v: u64) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            // No 64-bit division routine on 32-bit targets (record::divmod_u64_u32).
            let (q, r) = crate::record::divmod_u64_u32(v, 10);
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + r as u8;
            }
            v = q;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.bytes(digits.get(i..).unwrap_or(&[]))
    }

    /// Appends `", name value"`.
    fn field(&mut self, name: &str, v: u64) -> &mut Line {
        self.s(", ").s(name).s(" ").n(v)
    }

    /// The text (without NUL).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Ends the line with `'\n'` and a NUL after it (not counted in the length).
    fn finish(&mut self) {
        self.s("\n");
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = 0;
        }
    }
}

/// The dump's line `i` (0-based), or `None` past the last line. Lines: version, store
/// summary, one line per sensor in key order, one per pool tier, the pool's stray frees
/// (pointers outside every tier), boundary counters.
fn dump_line(st: &State, i: usize, out: &mut Line) -> Option<()> {
    let sensors = if st.initialized {
        st.store.sensor_count()
    } else {
        0
    };
    match i {
        0 => {
            out.s("sensor-spool ")
                .s(env!("CARGO_PKG_VERSION"))
                .s(" (abi ")
                .n(u64::from(SPOOL_ABI_VERSION))
                .s(")");
        }
        1 if !st.initialized => {
            out.s("store: not initialized");
        }
        1 => {
            let s = st.store.stats();
            out.s("store: sensors ")
                .n(u64::from(s.sensors))
                .s(", sectors ")
                .n(u64::from(s.sectors_used))
                .s("/")
                .n(u64::from(s.sectors_total))
                .field("stored", s.stored)
                .field("pending", s.pending)
                .field("written", s.written)
                .field("acked", s.acked)
                .field("dropped", s.dropped)
                .field("refused", s.refused);
        }
        _ if i - 2 < sensors => {
            let (key, s) = st.store.sensor_at(i - 2)?;
            out.s("sensor ")
                .n(u64::from(key.source))
                .s(":")
                .n(u64::from(key.id));
            if s.kind == SPOOL_KIND_EVT {
                out.s(" EVT");
            } else {
                out.s(" TSD ").n(u64::from(s.sample_rate_ms)).s(" ms");
            }
            out.s(": stored ")
                .n(u64::from(s.stored))
                .field("pending", u64::from(s.pending))
                .field("available", u64::from(s.available))
                .field("lost", u64::from(s.lost));
        }
        _ if i - 2 - sensors < SPOOL_POOL_TIERS => {
            let tier = i - 2 - sensors;
            let t = pool_tier_stats(tier)?;
            out.s("pool tier ")
                .n(tier as u64)
                .s(": block ")
                .n(u64::from(t.block_size))
                .s(" B, in use ")
                .n(u64::from(t.in_use))
                .s("/")
                .n(u64::from(t.capacity))
                .field("peak", u64::from(t.peak))
                .field("failed", u64::from(t.failed_allocs))
                .field("invalid frees", u64::from(t.invalid_frees))
                .field("fallbacks", u64::from(t.fallbacks));
        }
        _ if i - 2 - sensors == SPOOL_POOL_TIERS => {
            out.s("pool: stray frees ").n(u64::from(pool_stray_frees()));
        }
        _ if i - 2 - sensors == SPOOL_POOL_TIERS + 1 => {
            let f = &st.ffi;
            out.s("ffi: calls ")
                .n(f.calls)
                .field("rejected null", f.rejected_null)
                .field("not initialized", f.rejected_not_initialized)
                .field("not registered", f.rejected_not_registered)
                .field("index", f.rejected_index)
                .field("other", f.rejected_other)
                .field("store errors", f.store_errors)
                .field("gps", f.gps_records);
        }
        _ => return None,
    }
    out.finish();
    Some(())
}

/// Writes a human-readable dump of the library's state through `write`, one line per call
/// `write(ctx, s, len)`: `s` is the line's text, ending in `'\n'` and NUL-terminated at
/// `s[len]`, `len` its length without the NUL.
///
/// ```text
/// sensor-spool 0.2.0 (abi 3)
/// store: sensors 2, sectors 2/376, stored 7, pending 3, written 7, acked 0, dropped 0, refused 0
/// sensor 1:100 TSD 1000 ms: stored 4, pending 2, available 2, lost 0
/// sensor 1:101 EVT: stored 3, pending 1, available 2, lost 0
/// pool tier 0: block 256 B, in use 0/32, peak 0, failed 0, invalid frees 0, fallbacks 0
/// pool tier 1: ...
/// pool tier 2: ...
/// pool: stray frees 0
/// ffi: calls 12, rejected null 0, not initialized 0, not registered 0, index 0, other 0, store errors 0, gps 0
/// ```
///
/// Sensors are listed in (source, id) order as `source:id`. Before `spool_init` the store
/// line reads `store: not initialized` and no sensor lines follow (the pool lines are
/// still written: the C pool works before init). No `printf` is used.
///
/// Each line is formatted from one consistent snapshot inside the critical section, and
/// `write` is called outside it, so `write` may call the library (the dump then shows its
/// effects on later lines). `SPOOL_ERR_NULL` for a NULL `write`, `SPOOL_ERR_BUSY` when
/// called from inside a library callback (`utc_now`, GPS); otherwise `SPOOL_OK`, also
/// before init. The call is counted once, before the first line is formatted.
///
/// # Safety
///
/// `write` must be NULL or a function that may be called with `ctx` and a line as
/// described above; `ctx` is passed through untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_dump(
    write: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const c_char, len: usize)>,
    ctx: *mut c_void,
) -> SpoolStatus {
    let r = call(|_| write.ok_or(SpoolStatus::SPOOL_ERR_NULL).map(|_| ()));
    let Some(write) = write else {
        return SpoolStatus::SPOOL_ERR_NULL;
    };
    if let Err(e) = r {
        return e;
    }
    let mut i = 0;
    loop {
        let mut line = Line::new();
        let more: FfiResult<Option<()>> = peek(|st| dump_line(st, i, &mut line));
        match more {
            Err(e) => return e,
            Ok(None) => return SpoolStatus::SPOOL_OK,
            Ok(Some(())) => {
                let len = line.as_bytes().len();
                // The pointer covers the whole buffer, so the NUL at `s[len]` is readable too.
                let s = line.buf.as_ptr().cast::<c_char>();
                // SAFETY: `write` is callable with `ctx` per the contract; `s` is valid for
                // `len + 1` bytes (the text and its NUL, inside `line`, which outlives the call).
                unsafe { write(ctx, s, len) };
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> &str {
        core::str::from_utf8(l.as_bytes()).unwrap_or("<bad utf-8>")
    }

    #[test]
    fn integers_and_truncation() {
        let mut l = Line::new();
        l.n(0).s(" ").n(7).s(" ").n(10).s(" ").n(u64::MAX);
        assert_eq!(text(&l), "0 7 10 18446744073709551615");
        let mut l = Line::new();
        for _ in 0..LINE_CAP {
            l.s("ab");
        }
        assert_eq!(l.as_bytes().len(), LINE_CAP - 1, "room for the NUL kept");
        l.finish();
        assert_eq!(l.as_bytes().len(), LINE_CAP - 1);
        assert_eq!(l.buf[LINE_CAP - 1], 0);
    }

    #[test]
    fn version_components() {
        assert_eq!(parse_u32("0"), 0);
        assert_eq!(parse_u32("42"), 42);
        let v = env!("CARGO_PKG_VERSION");
        let mut l = Line::new();
        l.n(MAJOR.into())
            .s(".")
            .n(MINOR.into())
            .s(".")
            .n(PATCH.into());
        assert_eq!(text(&l), v);
        assert_eq!(VERSION_C.strip_suffix('\0'), Some(v));
    }
}
