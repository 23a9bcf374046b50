//! Prints and asserts the RAM figures of each profile (run with `--nocapture`).

use sensor_spool::pool::Tier;
use sensor_spool::profile::{self, Footprint, footprint};
use sensor_spool::spool::ENTRY_SIZE;

fn show(name: &str, budget: usize, f: &Footprint) {
    eprintln!(
        "profile {name}: budget {budget} B, size_of(spool) {} B; {} sectors x {} B; \
         fits {} TSD samples or {} EVT records; RAM per TSD sample {:.3} B \
         (({} + 3 side + 0.125 bitmap) / {}), per EVT {:.3} B; metadata {} B/sensor x {} sensors",
        f.total_bytes,
        f.sectors,
        f.sector_size,
        f.tsd_capacity,
        f.evt_capacity,
        f.bytes_per_tsd_sample,
        f.sector_size,
        f.tsd_capacity / f.sectors,
        f.bytes_per_evt,
        f.bytes_per_sensor,
        f.sensors,
    );
}

#[test]
fn profile_figures() {
    assert_eq!(ENTRY_SIZE, 24, "metadata per sensor");
    let w = footprint::<
        Tier<
            { profile::WICED_SECTOR },
            { profile::WICED_SECTORS },
            { profile::WICED_SECTORS.div_ceil(32) },
        >,
        Tier<64, 0, 0>,
        Tier<128, 0, 0>,
        { profile::WICED_SENSORS },
        { profile::WICED_SECTORS },
        { profile::WICED_RATES },
    >();
    show("WICED-like", 12 * 1024, &w);
    assert_eq!(w.total_bytes, core::mem::size_of::<profile::WicedSpool>());
    assert!(
        w.total_bytes <= 12 * 1024,
        "WICED spool {} B > 12 KiB",
        w.total_bytes
    );
    assert!(w.bytes_per_tsd_sample <= 4.5, "{}", w.bytes_per_tsd_sample);
    assert!(w.bytes_per_sensor <= 24);
    assert_eq!(w.tsd_capacity, profile::WICED_SECTORS * 8);
    assert_eq!(w.evt_capacity, profile::WICED_SECTORS * 4);

    let l = footprint::<
        Tier<
            { profile::LINUX_SECTOR },
            { profile::LINUX_SECTORS },
            { profile::LINUX_SECTORS.div_ceil(32) },
        >,
        Tier<128, 0, 0>,
        Tier<256, 0, 0>,
        { profile::LINUX_SENSORS },
        { profile::LINUX_SECTORS },
        { profile::LINUX_RATES },
    >();
    show("Linux-like", 64 * 1024, &l);
    assert_eq!(l.total_bytes, core::mem::size_of::<profile::LinuxSpool>());
    assert!(
        l.total_bytes <= 64 * 1024,
        "Linux spool {} B > 64 KiB",
        l.total_bytes
    );
    assert!(l.bytes_per_tsd_sample <= 4.5);
    assert_eq!(l.tsd_capacity, profile::LINUX_SECTORS * 16);
}

#[test]
fn profiles_fill_and_drain() {
    use sensor_spool::record::SensorKey;
    let mut s = profile::wiced();
    let h = s.register(SensorKey::new(0, 1), 1000).unwrap();
    let n = profile::WICED_SECTORS as u32 * 8;
    for i in 0..n {
        s.write(h, i, 1_000_000 + i as u64 * 1000).unwrap();
    }
    let st = s.stats();
    assert_eq!(
        (st.records, st.sectors_used, st.dropped),
        (n, profile::WICED_SECTORS as u32, 0)
    );
    // one more: the oldest sector (8 samples) is dropped
    s.write(h, n, 1_000_000 + n as u64 * 1000).unwrap();
    assert_eq!(s.stats().dropped, 8);
    assert_eq!(s.read(h).unwrap().value, 8);
    assert_eq!(s.check(), Ok(()));
}

#[test]
fn spool_is_a_static_behind_a_critical_section_mutex() {
    use core::cell::RefCell;
    use critical_section::Mutex;
    use sensor_spool::record::SensorKey;
    static SPOOL: Mutex<RefCell<profile::WicedSpool>> = Mutex::new(RefCell::new(profile::wiced()));
    let v = critical_section::with(|cs| {
        let mut s = SPOOL.borrow_ref_mut(cs);
        let h = s.register(SensorKey::new(3, 3), 500).unwrap();
        s.write(h, 99, 1_000).unwrap();
        s.read(h).unwrap()
    });
    assert_eq!((v.value, v.time_ms), (99, 1_000));
    eprintln!(
        "size_of WicedSpool {} B, LinuxSpool {} B",
        core::mem::size_of::<profile::WicedSpool>(),
        core::mem::size_of::<profile::LinuxSpool>()
    );
}
