//! Record kinds, sensor identity and the fixed-size little-endian record encodings.
//!
//! Two record kinds exist, decided per sensor (legacy rule: `sample_rate == 0` means EVT):
//!
//! | kind | bytes | encoding (little-endian) | time |
//! |---|---|---|---|
//! | [`Kind::Tsd`] | 4 | `value: u32` | implied: per-RAM-sector base time + slot x sample rate |
//! | [`Kind::Evt`] | 8 | `utc_seconds: u32`, then `value: u32` (timestamp first) | stored per record, 1 s resolution |
//!
//! The native API takes and returns 64-bit millisecond timestamps ([`Record::time_ms`]).
//! TSD times: the sensor's anchor (its oldest RAM sector's first sample) keeps its time in
//! ms; every other TSD sample sits on the sample-rate grid from there (see [`crate::ram`]),
//! so an off-grid sample reads back at its grid time. EVT times are stored as whole UTC
//! seconds like the legacy format, so an EVT written at `t` ms reads back at
//! `t / 1000 * 1000` ms.
#![forbid(unsafe_code)]

/// Identity of a sensor: data source (host, CAN, ...) and sensor id within that source.
///
/// Ordered by `(source, id)`; the spool's sensor table is sorted in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SensorKey {
    /// Data source of the sensor (legacy upload source / CSD type).
    pub source: u8,
    /// Sensor id within its source.
    pub id: u32,
}

impl SensorKey {
    /// A key from its parts.
    pub const fn new(source: u8, id: u32) -> Self {
        Self { source, id }
    }
}

/// The two record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Time series data: a 4-byte value, time implied by the sample rate.
    Tsd,
    /// Event: 4-byte UTC seconds then a 4-byte value.
    Evt,
}

impl Kind {
    /// The legacy rule: `sample_rate_ms == 0` is an event sensor, anything else TSD.
    pub const fn from_sample_rate(sample_rate_ms: u32) -> Self {
        if sample_rate_ms == 0 {
            Kind::Evt
        } else {
            Kind::Tsd
        }
    }

    /// Bytes of one encoded record of this kind (4 for TSD, 8 for EVT).
    pub const fn record_size(self) -> usize {
        match self {
            Kind::Tsd => TSD_SIZE,
            Kind::Evt => EVT_SIZE,
        }
    }
}

/// Bytes of an encoded TSD record.
pub const TSD_SIZE: usize = 4;
/// Bytes of an encoded EVT record.
pub const EVT_SIZE: usize = 8;

/// One record as returned by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// Sequence number of the record within its sensor (wrapping `u32`).
    pub seq: u32,
    /// The 32-bit value (legacy `imx_data_32_t`: uint, int or float bits).
    pub value: u32,
    /// Timestamp in milliseconds (UTC when the writer's clock was synced).
    pub time_ms: u64,
}

impl Record {
    /// The timestamp in whole seconds, saturated to `u32` (the legacy `imx_utc_time_t`).
    pub const fn utc_seconds(&self) -> u32 {
        let s = self.time_ms / 1000;
        if s > u32::MAX as u64 {
            u32::MAX
        } else {
            s as u32
        }
    }
}

/// Milliseconds to whole seconds, saturated to `u32` (EVT storage resolution).
///
/// Runs on every EVT write. On 32-bit targets a `u64 / 1000` is a call to the 64-bit
/// division routine (`__aeabi_uldivmod` on Cortex-M, tens of cycles), so there the
/// quotient is built from two 32-bit divisions of 16-bit chunks (`udiv` on Cortex-M3/M4,
/// a few cycles each); on 64-bit targets the plain division (a multiply) is used.
#[inline]
pub const fn ms_to_secs(time_ms: u64) -> u32 {
    // Past u32::MAX seconds (year 2106): saturate.
    if time_ms >= (u32::MAX as u64 + 1) * 1000 {
        return u32::MAX;
    }
    if cfg!(target_pointer_width = "64") {
        (time_ms / 1000) as u32
    } else {
        div1000_32(time_ms)
    }
}

/// `n / d` saturated to `u32` (`u32::MAX` when `d == 0`), without a 64-bit division: a
/// `u64 / u32` on a 32-bit target calls compiler_builtins' 64-bit division (about 400 B
/// of flash on Cortex-M). A dividend that fits in 32 bits takes one 32-bit division;
/// a larger one a 32-step shift-and-subtract loop (rare paths only: a sample gap of more
/// than 49 days, a flush of more than 42 million records).
#[inline]
pub(crate) fn div_sat_u32(n: u64, d: u32) -> u32 {
    if d == 0 {
        return u32::MAX;
    }
    if let Ok(n32) = u32::try_from(n) {
        return n32 / d;
    }
    div_sat_u32_long(n, d)
}

/// The long path of [`div_sat_u32`] (`n >= 2^32`, `d > 0`): restoring division of the
/// low word, the remainder kept below `2 * d < 2^33`.
#[inline(never)]
fn div_sat_u32_long(n: u64, d: u32) -> u32 {
    let d = u64::from(d);
    let mut r = n >> 32;
    if r >= d {
        return u32::MAX; // the quotient has more than 32 bits
    }
    let lo = n as u32;
    let mut q = 0u32;
    let mut i = 32;
    while i > 0 {
        i -= 1;
        r = (r << 1) | u64::from((lo >> i) & 1);
        q <<= 1;
        if r >= d {
            r -= d;
            q |= 1;
        }
    }
    q
}

/// `(n / d, n % d)` for `d > 0` (`(u64::MAX, 0)` for `d == 0`) without a 64-bit division
/// routine: one 32-bit division of the high word, then a 32-step shift-and-subtract loop
/// over the low word (for rare paths: the decimal digits of `spool_dump`).
#[cfg(any(test, feature = "ffi"))]
pub(crate) fn divmod_u64_u32(n: u64, d: u32) -> (u64, u32) {
    if d == 0 {
        return (u64::MAX, 0);
    }
    let hi = (n >> 32) as u32;
    let (q_hi, r_hi) = (hi / d, hi % d);
    let d64 = u64::from(d);
    let mut r = u64::from(r_hi);
    let lo = n as u32;
    let mut q_lo = 0u32;
    let mut i = 32;
    while i > 0 {
        i -= 1;
        r = (r << 1) | u64::from((lo >> i) & 1);
        q_lo <<= 1;
        if r >= d64 {
            r -= d64;
            q_lo |= 1;
        }
    }
    ((u64::from(q_hi) << 32) | u64::from(q_lo), r as u32)
}

/// `time_ms / 1000` for `time_ms < 1000 * 2^32` with 32-bit divisions only:
/// t / 1000 = (t / 8) / 125 with x = t / 8 < 125 * 2^32, by long division by 125 in
/// 16-bit digits (every partial dividend below 125 * 2^16 < 2^32).
#[inline]
const fn div1000_32(time_ms: u64) -> u32 {
    let x = time_ms >> 3;
    let n1 = ((x >> 16) as u32) & 0x7F_FFFF; // x >> 16 < 125 * 2^16 < 2^23
    let (q1, r1) = (n1 / 125, n1 % 125);
    let n2 = (r1 << 16) | (x as u32 & 0xFFFF);
    (q1 << 16) | (n2 / 125)
}

/// Encodes a TSD record (the value, little-endian).
pub const fn encode_tsd(value: u32) -> [u8; TSD_SIZE] {
    value.to_le_bytes()
}

/// Decodes a TSD record.
pub const fn decode_tsd(bytes: [u8; TSD_SIZE]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// Encodes an EVT record: UTC seconds first, then the value, both little-endian.
pub const fn encode_evt(utc_seconds: u32, value: u32) -> [u8; EVT_SIZE] {
    let t = utc_seconds.to_le_bytes();
    let v = value.to_le_bytes();
    [t[0], t[1], t[2], t[3], v[0], v[1], v[2], v[3]]
}

/// Decodes an EVT record into `(utc_seconds, value)`.
pub const fn decode_evt(b: [u8; EVT_SIZE]) -> (u32, u32) {
    (
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `div_sat_u32` is `min(n / d, u32::MAX)` (and `u32::MAX` for `d == 0`) on edge values
    /// and a pseudo-random sweep of both paths.
    #[test]
    fn div_sat_u32_is_the_saturated_quotient() {
        let want = |n: u64, d: u32| {
            if d == 0 {
                u32::MAX
            } else {
                (n / u64::from(d)).min(u64::from(u32::MAX)) as u32
            }
        };
        let edges = [
            0,
            1,
            2,
            999,
            1000,
            u64::from(u32::MAX),
            1 << 32,
            (1 << 32) + 1,
            u64::MAX,
        ];
        let divs = [
            0,
            1,
            2,
            3,
            100,
            1000,
            65_535,
            65_536,
            u32::MAX - 1,
            u32::MAX,
        ];
        for &n in &edges {
            for &d in &divs {
                assert_eq!(div_sat_u32(n, d), want(n, d), "{n} / {d}");
            }
        }
        for &n in &edges {
            for &d in &divs {
                let got = divmod_u64_u32(n, d);
                if d == 0 {
                    assert_eq!(got, (u64::MAX, 0));
                } else {
                    assert_eq!(
                        got,
                        (n / u64::from(d), (n % u64::from(d)) as u32),
                        "{n} / {d}"
                    );
                }
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = x >> (x % 40);
            let d = (x >> 17) as u32 >> (x % 31);
            assert_eq!(div_sat_u32(n, d), want(n, d), "{n} / {d}");
            if d > 0 {
                let (q, r) = divmod_u64_u32(n, d);
                assert_eq!((q, u64::from(r)), (n / u64::from(d), n % u64::from(d)));
            }
        }
    }

    #[test]
    fn encodings_are_little_endian_timestamp_first() {
        assert_eq!(encode_tsd(0x1122_3344), [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(decode_tsd([0x44, 0x33, 0x22, 0x11]), 0x1122_3344);
        let e = encode_evt(0xA1B2_C3D4, 0x0102_0304);
        assert_eq!(e, [0xD4, 0xC3, 0xB2, 0xA1, 0x04, 0x03, 0x02, 0x01]);
        assert_eq!(decode_evt(e), (0xA1B2_C3D4, 0x0102_0304));
    }

    #[test]
    fn kind_from_legacy_sample_rate() {
        assert_eq!(Kind::from_sample_rate(0), Kind::Evt);
        assert_eq!(Kind::from_sample_rate(1000), Kind::Tsd);
        assert_eq!(Kind::Tsd.record_size(), 4);
        assert_eq!(Kind::Evt.record_size(), 8);
    }

    #[test]
    fn seconds_match_the_plain_division() {
        // The 32-bit targets' path, checked on the host too.
        let limit = (u32::MAX as u64 + 1) * 1000;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut n = 0u32;
        let edges = [
            0,
            1,
            999,
            1000,
            1001,
            7999,
            8000,
            1_700_000_000_999,
            limit - 1,
        ];
        let rounds = if cfg!(miri) { 2_000 } else { 200_000 };
        for t in edges.into_iter().chain((0..rounds).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % limit
        })) {
            assert_eq!(div1000_32(t) as u64, t / 1000, "t={t}");
            assert_eq!(ms_to_secs(t) as u64, t / 1000, "t={t}");
            n += 1;
        }
        assert_eq!(ms_to_secs(limit), u32::MAX);
        assert_eq!(ms_to_secs(u64::MAX), u32::MAX);
        std::eprintln!("ms_to_secs: {n} values against u64 division");
    }

    #[test]
    fn seconds_saturate() {
        assert_eq!(ms_to_secs(1_999), 1);
        assert_eq!(ms_to_secs(u64::MAX), u32::MAX);
        let r = Record {
            seq: 0,
            value: 0,
            time_ms: 5_000_123,
        };
        assert_eq!(r.utc_seconds(), 5_000);
    }
}
