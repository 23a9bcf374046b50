//! A `fork()`ed child holding a copy of a `FileStorage` whose spare-making helper
//! thread runs in the parent: the child has no such thread (and may have copied the
//! helper's mutex locked), so its store must neither wait for nor join the thread.
//! Before the fix, dropping the store in the child joined the parent's thread, which
//! std refuses with a panic (in the C library's `spool_deinit`: an abort), or waited
//! on a mutex no thread will release. The child here reads the store's statistics
//! (which include the helper's counters) and drops it; the parent gives it 20 s, then
//! checks its own store still works and reads everything back after a remount.

mod file_common;

use file_common::*;
use sensor_spool::storage::Storage;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn _exit(code: i32) -> !;
}

const WNOHANG: i32 = 1;
const SIGKILL: i32 = 9;

#[test]
fn a_forked_child_drops_the_store_without_waiting_for_the_helper() {
    let d = TempDir::new("fork");
    let mut cfg = small_cfg(d.path());
    cfg.background_spares = true;
    cfg.file_size = 2048;
    let mut s = open_std(&cfg);
    let keys = keys();
    let mut m = Model::default();
    let mut rng = Rng(5);
    // Until the helper has made spares: its thread runs and holds state.
    while s.file_stats().spares_ahead < 4 {
        let b = m.batch(&mut rng, &keys, 6);
        s.append(runs_of(&b).as_slice(), |_| {}).unwrap();
        m.commit(&b);
    }
    // SAFETY: plain fork(2). The child only reads the store's statistics, drops the
    // store and leaves with _exit(2) (no atexit handlers, no unwinding into the
    // test harness); glibc keeps malloc usable in the child of a threaded process.
    let pid = unsafe { fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let f = s.file_stats();
            drop(s);
            f.files_created > 0
        }));
        // SAFETY: ends the child at once, as a C child would after its work.
        unsafe { _exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) }
    }
    let start = Instant::now();
    let mut status = 0i32;
    let exited = loop {
        // SAFETY: waits for our own child without blocking; `status` is a valid out pointer.
        let r = unsafe { waitpid(pid, &mut status, WNOHANG) };
        if r == pid {
            break true;
        }
        assert_eq!(r, 0, "waitpid failed");
        if start.elapsed() > Duration::from_secs(20) {
            // SAFETY: kills and reaps our own child.
            unsafe {
                kill(pid, SIGKILL);
                waitpid(pid, &mut status, 0);
            }
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(exited, "the child hung dropping the store (waited 20 s)");
    assert_eq!(status, 0, "child exit status {status:#x}");
    println!("child exited cleanly after {:?}", start.elapsed());
    // The parent's store and its helper are unaffected.
    for _ in 0..20 {
        let b = m.batch(&mut rng, &keys, 6);
        s.append(runs_of(&b).as_slice(), |_| {}).unwrap();
        m.commit(&b);
    }
    drop(s);
    let mut s = open_std(&cfg);
    check_exact(&mut s, &m);
}
