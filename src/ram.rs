//! Per-sensor rings of fixed-size RAM sectors drawn from one pool tier.
//!
//! # Layout
//!
//! A sensor's records live in a chain of **sectors** (blocks of one pool tier, addressed
//! by 12-bit block indices, never by pointers). A sector of `SECTOR` bytes holds
//! `N = SECTOR / record_size` records (8 TSD or 4 EVT records in a 32-byte sector) and
//! **nothing else**: no owner id, no link, no time stamp inside the sector.
//!
//! Records are placed by sequence number: record `seq` lives in slot `seq % N` of the
//! sector that covers `seq - seq % N` (N is a power of two, so this is also correct across
//! the `u32` wrap). Hence the position of every record follows from the sensor's
//! [`SeqState`] and the chain, and no read/write cursor is stored. A new sector is taken
//! when `written % N == 0` (or the chain is empty); the head sector returns to the pool as
//! soon as `erased` leaves it (all its records acknowledged or dropped) — see
//! [`RamStore::release`].
//!
//! # Side table (3 bytes per sector)
//!
//! Next to the pool, the store keeps one packed 24-bit entry per sector of the tier:
//! `link: u12` (next sector toward the tail) and `aux: u12`:
//!
//! * for a TSD sector that is not the head, `aux` is the **gap**: the number of sample
//!   periods between the end of the previous sector (`prev_base + N * rate`) and this
//!   sector's base time, coded as a small float (4-bit exponent, 8-bit mantissa): exact up
//!   to 511 periods, relative error below 1/256 above, at most 8,372,224 periods (larger
//!   gaps are clamped and counted in [`RamStore::gaps_clamped`]).
//! * the head's `aux` and the tail's `link` are otherwise unused; together with 8 bits in
//!   the sensor's [`Ring`] they hold the sensor's 32-bit **anchor**: the base time of the
//!   head sector in milliseconds, modulo 2^32.
//!
//! The time of TSD record `seq` is `anchor + sum over the chain of (N + gap) * rate +
//! (seq % N) * rate`, modulo 2^32, widened to 64 bits relative to the newest write time
//! the spool has seen (`latest`): exact while the record is within ±2^31 ms (24.8 days)
//! of `latest`. Samples inside one sector are taken as evenly spaced (the time implied
//! by the sample rate, as in the legacy format); a new sector starts from the actual time
//! of its first sample, rounded down to whole sample periods after the previous sector.
//!
//! RAM per TSD sample in a 32-byte sector: `(32 + 3) / 8 = 4.375` bytes, plus the pool's
//! bitmap bit (`1/8` byte per sector), i.e. 4.39 bytes; see [`crate::profile`].
//!
//! # Chains cannot loop
//!
//! A chain is never walked "until a sentinel": the number of sectors of a sensor is
//! derived from its sequence numbers, and every walk is bounded by it. Index 0 is an
//! ordinary sector; "no sector" is `0xFFF` ([`NONE`]), which is never a valid index
//! because a tier may hold at most 4095 sectors.
//!
//! # Hot path
//!
//! `append`, `get` and `release` dispatch once on the record kind to kind-specialised
//! code in which the records per sector are a constant (positions are masks and shifts,
//! never divisions). Reading at the head (the common case) and appending into the tail
//! touch one sector each (one checked pool lookup); a new TSD sector needs the tail's
//! base time, kept in a one-entry **tail hint** (the last TSD tail made by `append`), so
//! a sensor that keeps writing does not walk its chain; any other chain is walked once
//! (one side-table entry per hop). A record past the head sector is found from a
//! one-entry **read cursor** (where the last such lookup ended), so records read in
//! order walk each sector once. The store counts the sectors it holds, so the spill
//! threshold is one compare. `tests/store_counts.rs` pins the pool calls per cycle.
#![forbid(unsafe_code)]

use core::cell::Cell;

use crate::pool::{BlockId, Pool, TierSpec};
use crate::record::{self, Kind, Record};
use crate::sensor::SeqState;

/// "No sector" in a 12-bit link (never a valid sector index).
pub const NONE: u16 = 0xFFF;
/// Largest number of sectors a [`RamStore`] can address.
pub const MAX_SECTORS: usize = NONE as usize;

/// The sectors a [`RamStore`] uses: one tier of a block pool, addressed by index.
pub trait SectorPool {
    /// Bytes per sector (a power of two, at least 8).
    const SECTOR_SIZE: usize;
    /// Number of sectors in the tier.
    const SECTORS: usize;
    /// Takes a free sector, or `None` if the tier is exhausted.
    fn alloc_sector(&mut self) -> Option<u16>;
    /// Returns a sector; `false` if it was not allocated (nothing changes then).
    fn free_sector(&mut self, index: u16) -> bool;
    /// The bytes of an allocated sector.
    fn sector(&self, index: u16) -> Option<&[u8]>;
    /// The bytes of an allocated sector, mutably.
    fn sector_mut(&mut self, index: u16) -> Option<&mut [u8]>;
    /// The pool's own invariant check (`true` = consistent).
    fn pool_ok(&self) -> bool {
        true
    }
}

/// The store uses tier 0 (the smallest blocks) of a [`Pool`] through the pool's exclusive
/// index path. The other tiers stay available to other users of the pool.
impl<S: TierSpec, M: TierSpec, L: TierSpec> SectorPool for Pool<S, M, L> {
    const SECTOR_SIZE: usize = S::BLOCK;
    const SECTORS: usize = S::COUNT;
    fn alloc_sector(&mut self) -> Option<u16> {
        self.alloc_in(0).ok().map(BlockId::index)
    }
    fn free_sector(&mut self, index: u16) -> bool {
        self.free_id(BlockId::new(0, index)).is_ok()
    }
    fn sector(&self, index: u16) -> Option<&[u8]> {
        self.block(BlockId::new(0, index))
    }
    fn sector_mut(&mut self, index: u16) -> Option<&mut [u8]> {
        self.block_mut(BlockId::new(0, index))
    }
    fn pool_ok(&self) -> bool {
        self.check().is_ok()
    }
}

/// Largest gap (in sample periods) the 12-bit gap code represents.
pub const GAP_MAX: u32 = 511 << 14;

/// Encodes a gap in sample periods into 12 bits (clamped to [`GAP_MAX`], rounded down).
pub const fn gap_encode(g: u32) -> u16 {
    let g = if g > GAP_MAX { GAP_MAX } else { g };
    if g < 256 {
        return g as u16;
    }
    // g in [256 << (e-1), 512 << (e-1)) -> exponent e >= 1, mantissa (g >> (e-1)) - 256
    let bits = 32 - g.leading_zeros(); // >= 9
    let e = bits - 8; // 1..=15
    let m = (g >> (e - 1)) - 256;
    ((e << 8) | m) as u16
}

/// Decodes a 12-bit gap code into sample periods.
pub const fn gap_decode(c: u16) -> u32 {
    let e = (c >> 8) as u32 & 0xF;
    let m = c as u32 & 0xFF;
    if e == 0 { m } else { (256 | m) << (e - 1) }
}

/// Per-sensor chain state: head and tail sector indices and 8 anchor bits, packed in
/// 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ring(u32);

impl Ring {
    /// A sensor without sectors.
    pub const EMPTY: Ring = Ring(NONE as u32 | (NONE as u32) << 12);

    /// Head (oldest) sector, or [`NONE`].
    pub const fn head(self) -> u16 {
        (self.0 & 0xFFF) as u16
    }
    /// Tail (newest) sector, or [`NONE`].
    pub const fn tail(self) -> u16 {
        ((self.0 >> 12) & 0xFFF) as u16
    }
    /// Whether the sensor holds no sector.
    pub const fn is_empty(self) -> bool {
        self.head() == NONE
    }
    const fn hi(self) -> u32 {
        self.0 >> 24
    }
    const fn with(head: u16, tail: u16, hi: u32) -> Ring {
        Ring((head as u32 & 0xFFF) | (tail as u32 & 0xFFF) << 12 | (hi & 0xFF) << 24)
    }
}

impl Default for Ring {
    fn default() -> Self {
        Ring::EMPTY
    }
}

/// A broken RAM invariant found by [`RamStore::check_chain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainError {
    /// Head and tail disagree about emptiness, or the chain is empty while records are
    /// stored (or the reverse).
    Emptiness,
    /// A link leaves the tier (index >= number of sectors).
    BadIndex,
    /// The walk from head does not reach the tail after exactly the derived number of
    /// sectors.
    Length,
    /// A sector of the chain is not allocated in the pool.
    NotAllocated,
    /// A sector belongs to two chains (or twice to one).
    Shared,
    /// The cached base time of the tail sector disagrees with the chain.
    TailHint,
    /// The read cursor names a position the chain does not have (or a chain that
    /// does not exist).
    ReadCursor,
}

/// Records per sector for `kind` with `sector_size`-byte sectors.
pub const fn per_sector(sector_size: usize, kind: Kind) -> u32 {
    (sector_size / kind.record_size()) as u32
}

/// The pool plus the side table: every sensor's ring lives here.
pub struct RamStore<P, const SECTORS: usize> {
    pool: P,
    side: [[u8; 3]; SECTORS],
    gaps_clamped: u32,
    /// Sectors held by chains (allocated by `append`, not yet freed): the RAM use the
    /// spill threshold compares against, without a walk of the sensor table.
    held: u16,
    /// Tail hint `(sector + 1, base)`, two fields (a tuple would pad to 8 bytes): the
    /// TSD base time (ms mod 2^32) of the sector most recently made a tail, so the next
    /// sector of a sensor that keeps writing does not walk its chain (O(1) instead of
    /// O(sectors)). `0` = none, so the initial state is all zero.
    /// Exact by construction: a TSD chain's tail is a sector that [`RamStore::append`]
    /// made a tail, which set the hint for it (a later tail of any chain is another
    /// sector, so a hint naming a chain's current tail was set for it), or the tail left
    /// by an overflow drop, which clears the hint; and a tail's base never changes while
    /// it is allocated (head pops move the anchor by exactly the popped periods) except
    /// when a drop merges gaps. A stale hint names a freed sector, which cannot be a
    /// tail before `append` sets the hint again. [`RamStore::check_tail_hint`] verifies.
    tail_hint_sector1: u16,
    tail_hint_base: u32,
    /// The position the last chain walk of [`RamStore::get`] reached, so records read
    /// in order (an upload, [`crate::spool::Spool::iter`], a spill batch) walk from
    /// there instead of from the head: O(1) per record instead of O(position).
    /// In a `Cell` because `get` takes `&self`.
    cursor: Cell<Cursor>,
}

/// A one-entry read cursor: sector `sector` is `hops` sectors after the head of the
/// chain whose head is `head1 - 1`, and (TSD) its base time is `base` (ms mod 2^32).
/// `head1 == 0`: none, so the initial state is all zero.
///
/// Exact by construction: every sector a RamStore frees goes through
/// [`RamStore::free`], which forgets the cursor, and only a free can change which
/// chain a sector is in, where in it, or (by popping the head or merging gaps) a
/// sector's base time; appends only add sectors after the tail. So while the cursor
/// is set, `head1 - 1` is still the head of the chain it was walked on (and of no
/// other chain), and the chain still holds `sector` at `hops`. Checked by
/// [`RamStore::check_read_cursor`].
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    head1: u16,
    sector: u16,
    hops: u32,
    base: u32,
}

/// Widens a time modulo 2^32 to 64 bits, taking the value within ±2^31 ms of `latest`.
pub const fn unwrap_time(low: u32, latest: u64) -> u64 {
    let d = low.wrapping_sub(latest as u32) as i32 as i64;
    let t = latest as i64 + d;
    if t < 0 { 0 } else { t as u64 }
}

/// The kind selected by a kind-specialised method's `EVT` parameter.
const fn kind_k<const EVT: bool>() -> Kind {
    if EVT { Kind::Evt } else { Kind::Tsd }
}

/// Whole sample periods of `rate` ms from `expected` to `time_ms` (0 if `time_ms` is not
/// later, or `rate` is 0), saturated to `u32`. Divides in 32 bits unless the distance
/// exceeds 2^32 ms (49.7 days), so 32-bit targets avoid a 64-bit division, and skips
/// the division when the sample is on time (less than one period late).
#[inline]
fn periods_between(expected: u64, time_ms: u64, rate: u32) -> u32 {
    let d = time_ms.saturating_sub(expected);
    if d < rate as u64 || rate == 0 {
        0
    } else {
        // 32-bit division, or (past 2^32 ms) no division instruction at all.
        crate::record::div_sat_u32(d, rate)
    }
}

impl<P: SectorPool, const SECTORS: usize> RamStore<P, SECTORS> {
    const VALID: () = {
        assert!(
            SECTORS == P::SECTORS,
            "RamStore: SECTORS must equal the tier's block count"
        );
        assert!(SECTORS <= MAX_SECTORS, "RamStore: at most 4095 sectors");
        assert!(
            P::SECTOR_SIZE.is_power_of_two() && P::SECTOR_SIZE >= 8,
            "RamStore: sector size must be a power of two >= 8"
        );
    };

    /// A store over `pool` (whose sector tier must be unused by the index path).
    pub const fn new(pool: P) -> Self {
        let () = Self::VALID;
        Self {
            pool,
            // All zero, so a `static` spool lands in .bss: a side entry is only read
            // after `append` wrote it (link of a non-tail sector, aux of a non-head
            // sector, the anchor halves), never in its initial state.
            side: [[0; 3]; SECTORS],
            gaps_clamped: 0,
            held: 0,
            tail_hint_sector1: 0,
            tail_hint_base: 0,
            cursor: Cell::new(Cursor {
                head1: 0,
                sector: 0,
                hops: 0,
                base: 0,
            }),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// The pool, mutably (do not free the store's sectors through it).
    pub fn pool_mut(&mut self) -> &mut P {
        &mut self.pool
    }

    /// Records per sector for `kind`.
    pub const fn per_sector(kind: Kind) -> u32 {
        per_sector(P::SECTOR_SIZE, kind)
    }

    /// The pool's own invariant check.
    pub fn pool_ok(&self) -> bool {
        self.pool.pool_ok()
    }

    /// Sectors currently held by the chains (counted at allocation and free; `check`
    /// compares it with the sum over the sensors).
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub fn sectors_held(&self) -> u32 {
        self.held as u32
    }

    /// Returns a sector to the pool and counts it.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn free(&mut self, sector: u16) {
        // A free may change which chain a sector is in or where (see `Cursor`).
        self.cursor.set(Cursor::default());
        if self.pool.free_sector(sector) {
            self.held = self.held.saturating_sub(1);
        }
    }

    /// Number of TSD gaps that exceeded [`GAP_MAX`] periods and were clamped.
    pub fn gaps_clamped(&self) -> u32 {
        self.gaps_clamped
    }

    /// Link field of sector `s` ([`NONE`] for an index outside the side table).
    #[inline(always)]
    fn link(&self, s: u16) -> u16 {
        match self.side.get(s as usize) {
            Some(e) => e[0] as u16 | ((e[1] as u16 & 0xF) << 8),
            None => NONE,
        }
    }
    /// Aux field of sector `s` (0 for an index outside the side table).
    #[inline(always)]
    fn aux(&self, s: u16) -> u16 {
        match self.side.get(s as usize) {
            Some(e) => (e[1] as u16 >> 4) | ((e[2] as u16) << 4),
            None => 0,
        }
    }
    #[inline(always)]
    fn set_link(&mut self, s: u16, v: u16) {
        if let Some(e) = self.side.get_mut(s as usize) {
            e[0] = v as u8;
            e[1] = (e[1] & 0xF0) | ((v >> 8) as u8 & 0xF);
        }
    }
    #[inline(always)]
    fn set_aux(&mut self, s: u16, v: u16) {
        if let Some(e) = self.side.get_mut(s as usize) {
            e[1] = (e[1] & 0x0F) | ((v as u8 & 0xF) << 4);
            e[2] = (v >> 4) as u8;
        }
    }

    #[inline(always)]
    fn anchor(&self, r: Ring) -> u32 {
        self.aux(r.head()) as u32 | (self.link(r.tail()) as u32) << 12 | r.hi() << 24
    }
    #[inline(always)]
    fn set_anchor(&mut self, r: &mut Ring, a: u32) {
        self.set_aux(r.head(), (a & 0xFFF) as u16);
        self.set_link(r.tail(), ((a >> 12) & 0xFFF) as u16);
        *r = Ring::with(r.head(), r.tail(), a >> 24);
    }

    /// Records per sector of the kind selected by `EVT` (a power of two, a constant in
    /// every kind-specialised method below, so positions use masks and shifts).
    #[inline(always)]
    const fn n_of<const EVT: bool>() -> u32 {
        per_sector(P::SECTOR_SIZE, kind_k::<EVT>())
    }

    /// Number of sectors a sensor with state `s` holds (derived, not stored).
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    pub fn sectors_of(s: &SeqState, kind: Kind) -> u32 {
        match kind {
            Kind::Tsd => Self::sectors_k::<false>(s),
            Kind::Evt => Self::sectors_k::<true>(s),
        }
    }

    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn sectors_k<const EVT: bool>(s: &SeqState) -> u32 {
        if s.count() == 0 {
            return 0;
        }
        let n = Self::n_of::<EVT>();
        let head_start = s.erased() & !(n - 1);
        // <= count + 2 (n - 1) < 2^32 (count < 2^31): no overflow
        (s.written().wrapping_sub(head_start) + (n - 1)) >> n.trailing_zeros()
    }

    /// Whether appending record number `s.written()` needs a new sector.
    #[inline]
    pub fn needs_sector(s: &SeqState, kind: Kind) -> bool {
        s.count() == 0 || s.written() & (Self::per_sector(kind) - 1) == 0
    }

    /// Appends the record that will get sequence number `s.written()`. Call only after
    /// `s` accepted the write (the caller advances `s` afterwards). Returns `false`, with
    /// nothing changed, if a new sector was needed and the tier is exhausted.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn append(
        &mut self,
        r: &mut Ring,
        s: &SeqState,
        kind: Kind,
        rate: u32,
        value: u32,
        time_ms: u64,
        latest: u64,
    ) -> bool {
        match kind {
            Kind::Tsd => self.append_k::<false>(r, s, rate, value, time_ms, latest),
            Kind::Evt => self.append_k::<true>(r, s, rate, value, time_ms, latest),
        }
    }

    #[inline(always)]
    fn append_k<const EVT: bool>(
        &mut self,
        r: &mut Ring,
        s: &SeqState,
        rate: u32,
        value: u32,
        time_ms: u64,
        latest: u64,
    ) -> bool {
        let n = Self::n_of::<EVT>();
        let slot = s.written() & (n - 1);
        if (s.count() == 0 || slot == 0) && !self.new_tail::<EVT>(r, rate, slot, time_ms, latest) {
            return false;
        }
        let tail = r.tail();
        let Some(bytes) = self.pool.sector_mut(tail) else {
            return false;
        };
        if EVT {
            let at = slot as usize * record::EVT_SIZE;
            let Some(dst) = bytes.get_mut(at..at + record::EVT_SIZE) else {
                return false;
            };
            dst.copy_from_slice(&record::encode_evt(record::ms_to_secs(time_ms), value));
        } else {
            let at = slot as usize * record::TSD_SIZE;
            let Some(dst) = bytes.get_mut(at..at + record::TSD_SIZE) else {
                return false;
            };
            dst.copy_from_slice(&record::encode_tsd(value));
        }
        true
    }

    /// Takes a sector from the pool and makes it the tail (the first record of the sector
    /// goes to `slot`). TSD: a new chain's anchor is the sector's base time; a sector
    /// after the tail gets the gap from the tail's end. `false` (nothing changed) if the
    /// tier is exhausted.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn new_tail<const EVT: bool>(
        &mut self,
        r: &mut Ring,
        rate: u32,
        slot: u32,
        time_ms: u64,
        latest: u64,
    ) -> bool {
        let Some(new) = self.pool.alloc_sector() else {
            return false;
        };
        self.held = self.held.saturating_add(1);
        if r.is_empty() {
            *r = Ring::with(new, new, 0);
            if !EVT {
                let base = (time_ms as u32).wrapping_sub(slot.wrapping_mul(rate));
                self.set_anchor(r, base);
                self.set_tail_hint(new + 1, base);
            }
            return true;
        }
        if EVT {
            self.set_link(r.tail(), new);
            *r = Ring::with(r.head(), new, r.hi());
            self.set_aux(new, 0);
            return true;
        }
        let n = Self::n_of::<EVT>();
        let anchor = self.anchor(*r);
        let tail_base = self.tail_base(*r, anchor, rate, n);
        let end = tail_base.wrapping_add(n.wrapping_mul(rate));
        let periods = periods_between(unwrap_time(end, latest), time_ms, rate);
        if periods > GAP_MAX {
            self.gaps_clamped = self.gaps_clamped.wrapping_add(1);
        }
        let gap = gap_encode(periods);
        self.set_link(r.tail(), new);
        *r = Ring::with(r.head(), new, r.hi());
        self.set_aux(new, gap);
        self.set_anchor(r, anchor);
        // the new tail's base as a walk would compute it (from the coded gap)
        let base = end.wrapping_add(gap_decode(gap).wrapping_mul(rate));
        self.set_tail_hint(new + 1, base);
        true
    }

    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn set_tail_hint(&mut self, sector1: u16, base: u32) {
        self.tail_hint_sector1 = sector1;
        self.tail_hint_base = base;
    }

    /// Base time of the tail sector of a TSD chain (ms mod 2^32): the hint if it names
    /// this tail, else a walk from the head.
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn tail_base(&self, r: Ring, anchor: u32, rate: u32, n: u32) -> u32 {
        if self.tail_hint_sector1 == r.tail() + 1 {
            return self.tail_hint_base;
        }
        self.walk_timed(r, r.head(), u32::MAX, anchor, rate, n).1
    }

    /// Verifies the tail hint against a walk of this TSD chain (`check`).
    pub fn check_tail_hint(&self, r: Ring, kind: Kind, rate: u32) -> Result<(), ChainError> {
        if kind != Kind::Tsd || r.is_empty() || self.tail_hint_sector1 != r.tail() + 1 {
            return Ok(());
        }
        let n = Self::n_of::<false>();
        let walked = self
            .walk_timed(r, r.head(), u32::MAX, self.anchor(r), rate, n)
            .1;
        if walked == self.tail_hint_base {
            Ok(())
        } else {
            Err(ChainError::TailHint)
        }
    }

    /// Walks `hops` sectors from the head (stopping at the tail), accumulating the TSD
    /// base time from `base` when `TIMED` (`n` records per sector). Returns `(sector,
    /// base, previous sector, hops not taken)`.
    #[inline(always)]
    fn walk<const TIMED: bool>(
        &self,
        r: Ring,
        hops: u32,
        base: u32,
        rate: u32,
        n: u32,
    ) -> (u16, u32, u16, u32) {
        self.walk_from::<TIMED>(r, r.head(), hops, base, rate, n)
    }

    /// A timed [`RamStore::walk_from`], out of line: the walks off the hot path (read
    /// cursor, tail base without the hint, checks) share one copy (code size).
    #[inline(never)]
    fn walk_timed(
        &self,
        r: Ring,
        from: u16,
        hops: u32,
        base: u32,
        rate: u32,
        n: u32,
    ) -> (u16, u32, u16, u32) {
        self.walk_from::<true>(r, from, hops, base, rate, n)
    }

    /// [`RamStore::walk`] from sector `from` of chain `r` (whose base is `base`).
    #[inline(always)]
    fn walk_from<const TIMED: bool>(
        &self,
        r: Ring,
        from: u16,
        hops: u32,
        mut base: u32,
        rate: u32,
        n: u32,
    ) -> (u16, u32, u16, u32) {
        let tail = r.tail();
        let mut cur = from;
        let mut prev = NONE;
        if hops == 0 || cur == tail {
            return (cur, base, prev, hops);
        }
        // Bounded: at most SECTORS hops even if the chain were corrupted.
        let mut left = hops.min(SECTORS as u32);
        let beyond = hops - left;
        // Sample periods from the head's base to `cur`'s (TSD), multiplied once at the end
        // (wrapping arithmetic: the same result mod 2^32 as summing products).
        let mut periods = 0u32;
        let mut link = self.link(cur);
        while left > 0 && cur != tail {
            #[cfg(all(test, feature = "std"))]
            tests::HOPS.with(|h| h.set(h.get() + 1));
            // One side-table entry per hop: the next sector's gap and its own link.
            let next = link;
            let Some(e) = self.side.get(next as usize) else {
                break;
            };
            if TIMED {
                let gap = (e[1] as u16 >> 4) | ((e[2] as u16) << 4);
                periods = periods.wrapping_add(n).wrapping_add(gap_decode(gap));
            }
            link = e[0] as u16 | ((e[1] as u16 & 0xF) << 8);
            prev = cur;
            cur = next;
            left -= 1;
        }
        if TIMED {
            base = base.wrapping_add(periods.wrapping_mul(rate));
        }
        let left = left + beyond;
        (cur, base, prev, left)
    }

    /// The sector `hops` sectors after the head of `r` and its base time (TSD; EVT
    /// passes `anchor` and `rate` 0), from the read cursor when it lies on the way
    /// (then set to the result), else walked from the head (`anchor` = the head's
    /// base). `None` if the chain is shorter.
    #[inline(always)]
    fn locate(&self, r: Ring, hops: u32, anchor: u32, rate: u32, n: u32) -> Option<(u16, u32)> {
        if hops == 0 {
            // The head: no walk, and the cursor stays where a longer walk left it.
            return Some((r.head(), anchor));
        }
        self.locate_walk(r, hops, anchor, rate, n)
    }

    /// [`RamStore::locate`] past the head, out of line (code size).
    #[inline(never)]
    fn locate_walk(
        &self,
        r: Ring,
        hops: u32,
        anchor: u32,
        rate: u32,
        n: u32,
    ) -> Option<(u16, u32)> {
        let c = self.cursor.get();
        let (from, skipped, base) = if c.head1 == r.head() + 1 && c.hops <= hops {
            (c.sector, c.hops, c.base)
        } else {
            (r.head(), 0, anchor)
        };
        let (sector, base, _, left) = self.walk_timed(r, from, hops - skipped, base, rate, n);
        if left != 0 {
            return None;
        }
        self.cursor.set(Cursor {
            head1: r.head() + 1,
            sector,
            hops,
            base,
        });
        Some((sector, base))
    }

    /// Verifies the read cursor (`check`): if it names the head of chain `r`, the walk
    /// from that head must reach the cursor's sector and (TSD) base after its hops.
    /// Returns whether it names this chain.
    pub fn check_read_cursor(&self, r: Ring, kind: Kind, rate: u32) -> Result<bool, ChainError> {
        let c = self.cursor.get();
        if r.is_empty() || c.head1 != r.head() + 1 {
            return Ok(false);
        }
        let (anchor, rate) = match kind {
            Kind::Tsd => (self.anchor(r), rate),
            Kind::Evt => (0, 0),
        };
        let n = Self::per_sector(kind);
        let (sector, base, _, left) = self.walk_timed(r, r.head(), c.hops, anchor, rate, n);
        if left == 0 && sector == c.sector && base == c.base {
            Ok(true)
        } else {
            Err(ChainError::ReadCursor)
        }
    }

    /// Whether the read cursor is set (`check`: a set cursor must name some chain).
    pub fn read_cursor_set(&self) -> bool {
        self.cursor.get().head1 != 0
    }

    /// The record with sequence number `seq` (which must satisfy `erased <= seq <
    /// written` for state `s`), or `None` if it is not stored.
    #[inline(always)]
    pub fn get(
        &self,
        r: Ring,
        s: &SeqState,
        kind: Kind,
        rate: u32,
        seq: u32,
        latest: u64,
    ) -> Option<Record> {
        match kind {
            Kind::Tsd => self.get_k::<false>(r, s, rate, seq, latest),
            Kind::Evt => self.get_k::<true>(r, s, rate, seq, latest),
        }
    }

    #[inline(always)]
    fn get_k<const EVT: bool>(
        &self,
        r: Ring,
        s: &SeqState,
        rate: u32,
        seq: u32,
        latest: u64,
    ) -> Option<Record> {
        if seq.wrapping_sub(s.erased()) >= s.count() || r.is_empty() {
            return None;
        }
        let n = Self::n_of::<EVT>();
        let mask = n - 1;
        // whole sectors between the head's first slot and `seq`'s sector (n divides 2^32,
        // so this is exact across the u32 wrap)
        let hops = (seq & !mask).wrapping_sub(s.erased() & !mask) >> n.trailing_zeros();
        let slot = seq & mask;
        if EVT {
            let (sector, _) = self.locate(r, hops, 0, 0, n)?;
            let at = slot as usize * record::EVT_SIZE;
            let b: [u8; record::EVT_SIZE] = self
                .pool
                .sector(sector)?
                .get(at..at + record::EVT_SIZE)?
                .try_into()
                .ok()?;
            let (t, v) = record::decode_evt(b);
            Some(Record {
                seq,
                value: v,
                time_ms: t as u64 * 1000,
            })
        } else {
            let anchor = self.anchor(r);
            let (sector, base) = self.locate(r, hops, anchor, rate, n)?;
            let at = slot as usize * record::TSD_SIZE;
            let b: [u8; record::TSD_SIZE] = self
                .pool
                .sector(sector)?
                .get(at..at + record::TSD_SIZE)?
                .try_into()
                .ok()?;
            Some(Record {
                seq,
                value: record::decode_tsd(b),
                time_ms: unwrap_time(base.wrapping_add(slot.wrapping_mul(rate)), latest),
            })
        }
    }

    /// Frees the head sector (all its records are gone). Bounded, O(1).
    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn pop_head(&mut self, r: &mut Ring, kind: Kind, rate: u32) {
        match kind {
            Kind::Tsd => self.pop_head_k::<false>(r, rate),
            Kind::Evt => self.pop_head_k::<true>(r, rate),
        }
    }

    #[cfg_attr(feature = "inline-hot", inline(always))]
    #[cfg_attr(not(feature = "inline-hot"), inline)]
    fn pop_head_k<const EVT: bool>(&mut self, r: &mut Ring, rate: u32) {
        let head = r.head();
        if head == r.tail() {
            self.free(head);
            *r = Ring::EMPTY;
            return;
        }
        let next = self.link(head);
        if EVT {
            self.free(head);
            *r = Ring::with(next, r.tail(), r.hi());
        } else {
            let n = Self::n_of::<EVT>();
            let anchor = self
                .anchor(*r)
                .wrapping_add((n + gap_decode(self.aux(next))).wrapping_mul(rate));
            self.free(head);
            *r = Ring::with(next, r.tail(), r.hi());
            self.set_anchor(r, anchor);
        }
    }

    /// Returns to the pool every head sector left behind when `erased` moved from
    /// `old.erased()` to `new.erased()` (ack, ack_all, drop). Call after updating the
    /// state; `new` is the state after the change.
    #[inline(always)]
    pub fn release(&mut self, r: &mut Ring, old: &SeqState, new: &SeqState, kind: Kind, rate: u32) {
        match kind {
            Kind::Tsd => self.release_k::<false>(r, old, new, rate),
            Kind::Evt => self.release_k::<true>(r, old, new, rate),
        }
    }

    #[inline(always)]
    fn release_k<const EVT: bool>(
        &mut self,
        r: &mut Ring,
        old: &SeqState,
        new: &SeqState,
        rate: u32,
    ) {
        let n = Self::n_of::<EVT>();
        let mask = n - 1;
        let freed = if new.count() == 0 {
            Self::sectors_k::<EVT>(old)
        } else {
            (new.erased() & !mask).wrapping_sub(old.erased() & !mask) >> n.trailing_zeros()
        };
        // Bounded by the tier size even if the state were corrupted.
        let mut left = freed.min(SECTORS as u32);
        while left > 0 && !r.is_empty() {
            self.pop_head_k::<EVT>(r, rate);
            left -= 1;
        }
    }

    /// The first sector made only of unsent records, as `(index in chain, records in
    /// it)`, or `None` if every sector holds a pending record (or none is stored).
    pub fn droppable(s: &SeqState, kind: Kind) -> Option<(u32, u32)> {
        if s.count() == 0 {
            return None;
        }
        let n = Self::per_sector(kind);
        let off = s.erased() & (n - 1);
        if s.pending() == 0 {
            return Some((0, (n - off).min(s.count())));
        }
        // first k >= 1 with k * n >= pending + off
        let k = (s.pending() + off).div_ceil(n);
        let start_rel = k * n - off; // relative to erased
        if start_rel >= s.count() {
            return None;
        }
        Some((k, n.min(s.count() - start_rel)))
    }

    /// Overflow: drops the oldest sector holding only unsent records (see
    /// [`RamStore::droppable`]) and updates `s`. Returns the number of records dropped,
    /// or `None` with nothing changed.
    pub fn drop_oldest_unsent(
        &mut self,
        r: &mut Ring,
        s: &mut SeqState,
        kind: Kind,
        rate: u32,
    ) -> Option<u32> {
        let (k, cnt) = Self::droppable(s, kind)?;
        if r.is_empty() {
            return None;
        }
        // Merged gaps may round (and renumbering moves records): forget the hint.
        self.set_tail_hint(0, 0);
        if k == 0 {
            let old = *s;
            s.drop_oldest(cnt).ok()?;
            self.release(r, &old, s, kind, rate);
            return Some(cnt);
        }
        let n = Self::per_sector(kind);
        let anchor = if kind == Kind::Tsd {
            self.anchor(*r)
        } else {
            0
        };
        let (victim, _, prev, left) = self.walk::<false>(*r, k, 0, 0, n);
        if prev == NONE || left != 0 {
            return None;
        }
        s.remove_unsent(cnt).ok()?;
        if victim == r.tail() {
            *r = Ring::with(r.head(), prev, r.hi());
        } else {
            let next = self.link(victim);
            self.set_link(prev, next);
            if kind == Kind::Tsd {
                let merged = gap_decode(self.aux(victim)) as u64
                    + n as u64
                    + gap_decode(self.aux(next)) as u64;
                if merged > GAP_MAX as u64 {
                    self.gaps_clamped = self.gaps_clamped.wrapping_add(1);
                }
                self.set_aux(next, gap_encode(merged.min(GAP_MAX as u64) as u32));
            }
        }
        if kind == Kind::Tsd {
            self.set_anchor(r, anchor);
        }
        self.free(victim);
        Some(cnt)
    }

    /// Frees every sector of a chain (used when a sensor is cleared).
    pub fn clear(&mut self, r: &mut Ring, s: &SeqState, kind: Kind) {
        self.set_tail_hint(0, 0);
        let mut left = Self::sectors_of(s, kind).min(SECTORS as u32);
        while left > 0 && !r.is_empty() {
            self.pop_head(r, kind, 0);
            left -= 1;
        }
        *r = Ring::EMPTY;
    }

    /// Verifies one sensor's chain against its state: emptiness agrees with the count,
    /// every index is in range and allocated, the walk from the head reaches the tail
    /// after exactly the derived number of sectors, and no sector was already `seen`
    /// (a 4096-bit set shared across all sensors of one check).
    pub fn check_chain(
        &self,
        r: Ring,
        s: &SeqState,
        kind: Kind,
        seen: &mut [u32; 128],
    ) -> Result<(), ChainError> {
        let want = Self::sectors_of(s, kind);
        if (r.head() == NONE) != (r.tail() == NONE) || (want == 0) != r.is_empty() {
            return Err(ChainError::Emptiness);
        }
        if want == 0 {
            return Ok(());
        }
        let mut cur = r.head();
        for i in 0..want {
            if cur as usize >= SECTORS {
                return Err(ChainError::BadIndex);
            }
            if self.pool.sector(cur).is_none() {
                return Err(ChainError::NotAllocated);
            }
            let (w, b) = (cur as usize / 32, 1u32 << (cur % 32));
            let Some(word) = seen.get_mut(w) else {
                return Err(ChainError::BadIndex);
            };
            if *word & b != 0 {
                return Err(ChainError::Shared);
            }
            *word |= b;
            if i + 1 == want {
                return if cur == r.tail() {
                    Ok(())
                } else {
                    Err(ChainError::Length)
                };
            }
            if cur == r.tail() {
                return Err(ChainError::Length);
            }
            cur = self.link(cur);
        }
        Err(ChainError::Length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    std::thread_local! {
        /// Sectors walked by this thread's chain walks (exact-counter tests).
        pub(super) static HOPS: Cell<u64> = const { Cell::new(0) };
    }

    #[cfg(feature = "std")]
    fn hops() -> u64 {
        HOPS.with(|h| h.replace(0))
    }

    /// Reads in order walk each sector once, whatever the position (the read cursor):
    /// exact hop counts for reads, a re-read after `revert`, `iter`, and reads after an
    /// `ack` freed sectors (which forgets the cursor). Without the cursor the first
    /// drain alone walks 8 x (0 + 1 + ... + 99) = 39,600 sectors.
    #[cfg(feature = "std")]
    #[test]
    fn reads_in_order_walk_each_sector_once() {
        extern crate std;
        use crate::profile;
        use crate::record::SensorKey;
        use std::boxed::Box;

        let mut sp = Box::new(profile::wiced());
        let tsd = sp.register(SensorKey::new(0, 1), 1000).unwrap();
        let evt = sp.register(SensorKey::new(0, 2), 0).unwrap();
        let t0 = 1_700_000_000_000u64;
        for i in 0..800u32 {
            sp.write(tsd, i, t0 + i as u64 * 1000).unwrap();
        }
        for i in 0..200u32 {
            sp.write(evt, i, t0 + i as u64 * 1000).unwrap();
        }
        assert_eq!(sp.sensor_stats(tsd).unwrap().sectors, 100);
        assert_eq!(sp.sensor_stats(evt).unwrap().sectors, 50);
        // `check` walks every chain: not counted.
        let checked = |sp: &profile::WicedSpool| {
            assert_eq!(sp.check(), Ok(()));
            hops();
        };
        hops();
        let drain = |sp: &mut profile::WicedSpool, h, from: u32, to: u32| {
            for i in from..to {
                let r = sp.read(h).unwrap();
                assert_eq!((r.seq, r.value), (i, i));
                assert_eq!(r.time_ms, t0 + i as u64 * 1000);
            }
        };
        drain(&mut sp, tsd, 0, 800);
        assert_eq!(hops(), 99, "800 TSD records in 100 sectors");
        checked(&sp);
        // Another sensor's reads move the cursor to its chain and back.
        drain(&mut sp, evt, 0, 200);
        assert_eq!(hops(), 49, "200 EVT records in 50 sectors");
        sp.revert(tsd).unwrap();
        let seen: u32 = sp.iter(tsd).unwrap().map(|r| r.value).sum();
        assert_eq!(seen, (0..800).sum::<u32>());
        assert_eq!(hops(), 99, "iter");
        drain(&mut sp, tsd, 0, 800);
        assert_eq!(
            hops(),
            99,
            "after revert: from the head again, then in order"
        );
        checked(&sp);
        sp.ack(tsd, 400).unwrap();
        sp.revert(tsd).unwrap();
        checked(&sp);
        drain(&mut sp, tsd, 400, 800);
        assert_eq!(hops(), 49, "after an ack freed 50 sectors");
        sp.ack_all(tsd).unwrap();
        checked(&sp);
    }

    #[test]
    fn gap_code_exact_to_511_and_monotone() {
        for g in 0..=511 {
            assert_eq!(gap_decode(gap_encode(g)), g);
        }
        let mut last = 0;
        for g in (512..GAP_MAX).step_by(997) {
            let d = gap_decode(gap_encode(g));
            assert!(d <= g && (g - d) as u64 * 256 <= g as u64, "g={g} d={d}");
            assert!(d >= last);
            last = d;
        }
        assert_eq!(gap_decode(gap_encode(GAP_MAX)), GAP_MAX);
        assert_eq!(gap_decode(gap_encode(u32::MAX)), GAP_MAX);
        assert!(gap_encode(GAP_MAX) < 0x1000);
    }

    #[test]
    fn unwrap_time_window() {
        let latest = 1_700_000_000_000u64;
        for d in [0i64, 1, -1, 1 << 30, -(1 << 30), (1 << 31) - 1, -(1 << 31)] {
            let t = (latest as i64 + d) as u64;
            assert_eq!(unwrap_time(t as u32, latest), t);
        }
        assert_eq!(unwrap_time(5, 0), 5);
    }

    #[test]
    fn ring_packing() {
        let r = Ring::with(0x123, 0xABC, 0xEF);
        assert_eq!((r.head(), r.tail(), r.hi()), (0x123, 0xABC, 0xEF));
        assert!(Ring::EMPTY.is_empty());
        assert_eq!(Ring::EMPTY.tail(), NONE);
    }
}
