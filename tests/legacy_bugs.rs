//! One test per corruption class of the legacy iMatrix memory manager
//! (`legacy-imatrix-api.md` section 3), each driving the new store the way the legacy
//! callers drove the old one and showing it stays correct.

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::profile::{self, WicedSpool};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::{OverflowPolicy, SeqError, SeqState};
use sensor_spool::spool::{Error, RamOnly, SensorHandle, Spool};

const T0: u64 = 1_700_000_000_000;

fn tsd(spool: &mut WicedSpool, id: u32) -> SensorHandle {
    spool.register(SensorKey::new(0, id), 1000).unwrap()
}

fn write_n(spool: &mut WicedSpool, h: SensorHandle, from: u32, n: u32) {
    for v in from..from + n {
        spool.write(h, v, T0 + v as u64 * 1000).unwrap();
    }
}

/// 3.1: the upload loop used `no_samples` as the read count every cycle, ignoring what
/// was already pending, so reads ran past the end, `no_pending` grew past `no_samples`
/// (entry 200: pending=47186) and erase underflowed `no_samples`.
#[test]
fn over_reading_past_available_is_refused() {
    let mut s = profile::wiced();
    let h = tsd(&mut s, 200);
    write_n(&mut s, h, 0, 10);
    for cycle in 0..50u32 {
        // the buggy loop: read `no_samples` records, fail the upload, keep going
        let no_samples = s.sensor_stats(h).unwrap().no_samples;
        let mut got = 0;
        for _ in 0..no_samples {
            match s.read(h) {
                Ok(_) => got += 1,
                Err(e) => assert_eq!(e, Error::NoData),
            }
        }
        let st = s.sensor_stats(h).unwrap();
        assert!(
            st.pending <= st.count,
            "cycle {cycle}: pending {} > count {}",
            st.pending,
            st.count
        );
        assert_eq!(st.available, 0);
        assert_eq!(got, if cycle == 0 { 10 } else { 0 });
        assert_eq!(
            (st.count, st.pending, st.no_samples, st.no_pending),
            (10, 10, 10, 10)
        );
    }
    // and the erase cannot underflow: acking more than pending changes nothing
    assert_eq!(s.ack(h, 11), Err(Error::AckTooMany));
    assert_eq!(s.sensor_stats(h).unwrap().count, 10);
    assert_eq!(s.ack_all(h), Ok(10));
    assert_eq!(s.ack(h, 1), Err(Error::AckTooMany));
    let st = s.sensor_stats(h).unwrap();
    assert_eq!((st.count, st.pending, st.no_samples), (0, 0, 0));
    // the emblematic impossible state cannot even be constructed
    assert_eq!(SeqState::from_raw(0, 26214, 0), Err(SeqError::Order));
    assert_eq!(s.check(), Ok(()));
}

/// 3.2: on ACK the handler erased the *whole* `no_pending` of every entry, which
/// included records read in earlier failed attempts or not put in the packet, so
/// never-sent data was destroyed by a successful upload.
#[test]
fn partial_ack_erases_exactly_the_acknowledged_records() {
    let mut s = profile::wiced();
    let a = tsd(&mut s, 1);
    let b = tsd(&mut s, 2);
    write_n(&mut s, a, 0, 20);
    write_n(&mut s, b, 100, 5);
    // attempt 1 reads 6 of A and fails without revert (the old leak), attempt 2 reads 4
    // more of A and 5 of B; the server acknowledges only packet 2's A part (4 records)...
    for _ in 0..10 {
        s.read(a).unwrap();
    }
    for _ in 0..5 {
        s.read(b).unwrap();
    }
    // ...and the caller acks exactly the oldest 4 pending of A: nothing else goes
    s.ack(a, 4).unwrap();
    let st = s.sensor_stats(a).unwrap();
    assert_eq!((st.count, st.pending, st.available), (16, 6, 10));
    assert_eq!(s.peek_stored(a, 0).unwrap().value, 4);
    assert_eq!(
        s.sensor_stats(b).unwrap().pending,
        5,
        "other sensors untouched"
    );
    // the rest of A's pending records come back on revert, in order, none lost
    assert_eq!(s.revert(a), Ok(6));
    let vals: Vec<u32> = (0..16).map(|_| s.read(a).unwrap().value).collect();
    assert_eq!(vals, (4..20).collect::<Vec<_>>());
    assert_eq!(s.read(a), Err(Error::NoData));
    // an ack larger than pending is refused and changes nothing
    assert_eq!(s.ack(b, 6), Err(Error::AckTooMany));
    assert_eq!(s.sensor_stats(b).unwrap().pending, 5);
    assert_eq!(s.check(), Ok(()));
}

/// 3.1 / 3.5: `no_samples` / `no_pending` are `u16` in the legacy CSD and wrapped
/// (0 -> 65535 on underflow, 65536 -> 0 on overflow).
#[test]
fn u16_counters_saturate_never_wrap() {
    // 300 sectors of 1 KiB = 76,800 TSD records: more than u16 can count
    type Big = Pool<Tier<1024, 300, 10>, Tier<2048, 0, 0>, Tier<4096, 0, 0>>;
    type BigSpool = Spool<Big, 2, 300, 2>;
    let mut s: Box<BigSpool> = Box::new(Spool::new(Big::new(), RamOnly, OverflowPolicy::RejectNew));
    let h = s.register(SensorKey::new(0, 9), 100).unwrap();
    for v in 0..70_000u32 {
        s.write(h, v, T0 + v as u64 * 100).unwrap();
    }
    for _ in 0..66_000 {
        s.read(h).unwrap();
    }
    let st = s.sensor_stats(h).unwrap();
    assert_eq!((st.count, st.pending), (70_000, 66_000));
    assert_eq!((st.no_samples, st.no_pending), (u16::MAX, u16::MAX));
    s.ack(h, 65_999).unwrap();
    let st = s.sensor_stats(h).unwrap();
    assert_eq!(
        (st.count, st.pending, st.no_samples, st.no_pending),
        (4_001, 1, 4_001, 1)
    );
    assert_eq!(s.read(h).unwrap().value, 66_000);
    assert_eq!(s.ack_all(h), Ok(2));
    assert_eq!(s.sensor_stats(h).unwrap().no_samples, 3_999);
    assert_eq!(s.check(), Ok(()));
}

/// 3.3: new sectors were zeroed, so `next_sector = 0` (a valid sector) and every chain
/// looped through sector 0 ("54,000 sectors for 54 entries"); `start_sector == 0` also
/// meant "empty". Here sector 0 is an ordinary sector, "no sector" is 0xFFF, and every
/// walk is bounded by the count derived from sequence numbers.
#[test]
fn sector_zero_is_ordinary_and_chains_never_loop() {
    let mut s = profile::wiced();
    let hs: Vec<SensorHandle> = (0..profile::WICED_SENSORS as u32)
        .map(|i| tsd(&mut s, i))
        .collect();
    // the first sensor's first sector is block 0
    for (i, h) in hs.iter().enumerate() {
        s.write(*h, i as u32, T0).unwrap();
    }
    let st = s.stats();
    assert_eq!(
        (st.sectors_used, st.records),
        (hs.len() as u32, hs.len() as u32),
        "one sector per entry"
    );
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(s.peek(*h, 0).unwrap().value, i as u32);
    }
    // empty sensor 0 (owner of sector 0), let another sensor take sector 0 mid-chain
    s.read(hs[0]).unwrap();
    s.ack(hs[0], 1).unwrap();
    assert_eq!(s.sensor_stats(hs[0]).unwrap().sectors, 0);
    write_n(&mut s, hs[1], 1_000, 40); // sector 0 is reused inside sensor 1's chain
    let st = s.sensor_stats(hs[1]).unwrap();
    assert_eq!((st.count, st.sectors), (41, 6));
    let vals: Vec<u32> = s.iter(hs[1]).unwrap().map(|r| r.value).collect();
    assert_eq!(
        vals.len(),
        41,
        "iteration terminates after exactly count records"
    );
    assert_eq!(vals[1..], (1_000..1_040).collect::<Vec<_>>()[..]);
    // drain everything: all sectors come back, check passes at every step
    for h in &hs {
        while s.read(*h).is_ok() {}
        s.ack_all(*h).unwrap();
        assert_eq!(s.check(), Ok(()));
    }
    assert_eq!(s.stats().sectors_used, 0);
    assert_eq!(s.pool().stats()[0].in_use, 0);
}

/// 3.7 (and MM2's "read position lost at the end of a sector"): a failed upload plus
/// revert must give back exactly the pending records, any number of times, across sector
/// boundaries.
#[test]
fn revert_after_reads_is_lossless() {
    let mut s = profile::wiced();
    let t = tsd(&mut s, 5);
    let e = s.register(SensorKey::new(1, 5), 0).unwrap();
    write_n(&mut s, t, 0, 24); // 3 full TSD sectors
    for i in 0..12u32 {
        s.write_secs(e, 500 + i, 1_700_000_000 + i).unwrap(); // 3 full EVT sectors
    }
    for round in 0..5 {
        let k = 8 + round; // ends exactly on / just past a sector boundary
        let got: Vec<_> = (0..k).map(|_| s.read(t).unwrap()).collect();
        let ev: Vec<_> = (0..4).map(|_| s.read(e).unwrap()).collect();
        assert_eq!(s.revert(t), Ok(k));
        assert_eq!(s.revert(e), Ok(4));
        let again: Vec<_> = (0..k).map(|_| s.read(t).unwrap()).collect();
        let ev2: Vec<_> = (0..4).map(|_| s.read(e).unwrap()).collect();
        assert_eq!(got, again);
        assert_eq!(ev, ev2);
        assert_eq!(ev[0].time_ms, 1_700_000_000_000);
        s.revert(t).unwrap();
        s.revert(e).unwrap();
        assert_eq!(s.sensor_stats(t).unwrap().count, 24);
    }
    // timestamps are the implied ones, values in order
    let all: Vec<_> = s.iter(t).unwrap().collect();
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, r)| r.value == i as u32 && r.time_ms == T0 + i as u64 * 1000)
    );
    // reading everything then nothing more: no zeroed/invented records (MM2 infinite loop)
    for _ in 0..24 {
        s.read(t).unwrap();
    }
    assert_eq!(s.read(t), Err(Error::NoData));
    assert_eq!(s.check(), Ok(()));
}

/// 3.8: the same sensor written both as TSD and as EVT mixed record types in one chain.
/// Here the kind is fixed at registration; re-registering with another rate is refused.
#[test]
fn kind_is_fixed_per_sensor() {
    let mut s = profile::wiced();
    let k = SensorKey::new(0, 77);
    let h = s.register(k, 0).unwrap();
    assert_eq!(s.register(k, 1000), Err(Error::Conflict));
    assert_eq!(s.register(k, 0), Ok(h));
    s.write(h, 1, T0).unwrap();
    assert_eq!(s.read(h).unwrap().time_ms, T0);
}
