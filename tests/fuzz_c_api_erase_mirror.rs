//! Regression (fuzz target `c_api`, found by a 15-minute run): the target's model of
//! `erase_tsd_evt` read the entry's `no_pending` after the call, when it holds the mirror
//! the call wrote, instead of the value the firmware left before the call, which is what
//! the library erases by. The input is kept as seed `seed-erase-no-pending-before`; this
//! test pins the library's side of the situation it built.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;

/// Two arrays registered for one sensor (same source, same id). Every call re-mirrors
/// every entry of the sensor it changed, so a read through one array shows in the other
/// array's `no_pending` too (before ABI 3 only the entry called was mirrored, which left
/// the other array stale). `erase_tsd_evt` through the other array still erases what
/// its `no_pending` said before the call (here lowered by the firmware to 0: nothing),
/// not what the store holds pending; the mirror written after the call then shows the
/// real count. The fuzz model had read `no_pending` after the call, i.e. the mirror.
#[test]
fn erase_goes_by_no_pending_before_the_call_of_the_array_it_is_given() {
    let _g = serial();
    init(0);
    let a = Arrays::new(40, &[1000]);
    let b = Arrays::new(40, &[1000]);
    assert_eq!(a.register(2), SPOOL_OK);
    assert_eq!(b.register(2), SPOOL_OK);
    // SAFETY: registered arrays.
    unsafe {
        write_tsd_evt_time(a.csb(), a.csd(), 0, 7, 1000);
        write_tsd_evt_time(a.csb(), a.csd(), 0, 8, 1001);
    }
    let mut v = [0u32; 2];
    // SAFETY: registered arrays, two-word buffer.
    unsafe { read_tsd_evt(b.csb(), b.csd(), 0, v.as_mut_ptr()) };
    assert_eq!(v[0], 7);
    assert_eq!(b.counts(0), (2, 1), "the array read through");
    assert_eq!(a.counts(0), (2, 1), "the other array: mirrored too");
    a.set_no_pending(0, 0);
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt(a.csb(), a.csd(), 0) };
    assert_eq!(spool_last_status(), SPOOL_OK);
    assert_eq!(
        a.counts(0),
        (2, 1),
        "nothing erased; the mirror shows 1 pending again"
    );
    assert_eq!(b.counts(0), (2, 1));
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt(a.csb(), a.csd(), 0) };
    assert_eq!(a.counts(0), (1, 0), "now no_pending said 1");
    assert_eq!(b.counts(0), (1, 0), "and the other array follows");
    assert_eq!(spool_check(), SPOOL_OK);
}
