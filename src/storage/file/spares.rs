//! Spare files made ahead by a helper thread ([`FileConfig::background_spares`]).
//!
//! Below the cap every new data file starts in a spare: a file whose name was
//! made durable by a directory `fsync`. Creating files costs inode allocation
//! and metadata writes, which on some filesystems take as long as an
//! `fdatasync`; on the write path they would delay the batch that needs the
//! file. The helper creates the next spares of a source while the store keeps
//! writing, and hands them over only after their directory `fsync` (and the
//! `fdatasync` of each, which writes its inode), so a spare taken from it is
//! at least as durable as one made on the write path. Names come from the
//! store (reserved from its file numbers), so they stay unique.
//!
//! The helper's spares are **prefilled** (while batches take at most half a
//! file; the store decides per request): `file_size` zero bytes, written and
//! synced with the file. The store then writes into blocks that are allocated
//! and written already, so the `fdatasync` of each batch writes data only (no
//! block allocation, no size change), as when a file is reused at the cap.
//! Zeros never pass as a file header or a frame, so a prefilled spare is a
//! spare at mount, and the zeros after a file's last frame are a tail that is
//! never read.
//!
//! # fork()
//!
//! A `fork()`ed child has a copy of the queue but no helper thread, and the
//! queue's mutex may have been held by the helper at the fork. Every call
//! therefore checks the process id first: in another process than the one
//! that started the helper, it touches neither the mutex nor the thread. The
//! child's store sees no helper (it makes spares on its write path), and
//! dropping it does not wait for a thread that does not exist.
//!
//! [`FileConfig::background_spares`]: super::FileConfig::background_spares

use super::fs::{FileSystem, FsFile};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Spares to make for one source.
struct Job {
    source: u8,
    dir: PathBuf,
    names: Vec<PathBuf>,
    /// Zero bytes written into each spare (0: an empty spare).
    prefill: usize,
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    /// Source, number of files and prefill of the job being worked on.
    running: Option<(u8, usize, usize)>,
    /// Durable spares not handed over yet: source, path, size.
    ready: Vec<(u8, PathBuf, u64)>,
    stop: bool,
    created: u32,
    dir_syncs: u64,
    syncs: u64,
    failures: u32,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the helper cannot leave the state half-updated in a way
        // that matters (lists of paths, counters): keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters of the helper, added to the store's [`super::FileStats`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MakerCounts {
    pub created: u32,
    pub dir_syncs: u64,
    pub syncs: u64,
    pub failures: u32,
}

/// The helper thread and its queue.
pub(super) struct SpareMaker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the helper (see the module docs on `fork()`).
    pid: u32,
}

impl core::fmt::Debug for SpareMaker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpareMaker").finish_non_exhaustive()
    }
}

impl SpareMaker {
    /// Starts the helper on its own handle of the filesystem layer. `None`
    /// if the thread cannot be spawned (spares are then made on the write path).
    pub fn start<F: FileSystem>(fs: F) -> Option<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spool-spares".into())
            .spawn(move || run(fs, &s))
            .ok()?;
        Some(Self {
            shared,
            thread: Some(thread),
            pid: std::process::id(),
        })
    }

    /// Whether the helper runs in this process (`false` in a `fork()`ed child).
    pub fn here(&self) -> bool {
        std::process::id() == self.pid
    }

    /// Queues `names` (new files in `dir`, each prefilled with `prefill` zero
    /// bytes) as the next spares of `source`.
    pub fn request(&self, source: u8, dir: PathBuf, names: Vec<PathBuf>, prefill: usize) {
        if !self.here() {
            return;
        }
        self.shared.lock().jobs.push(Job {
            source,
            dir,
            names,
            prefill,
        });
        self.shared.wake.notify_one();
    }

    /// Spares queued or being made (not ready yet): of `source`, of every source.
    pub fn pending(&self, source: u8) -> (usize, usize) {
        if !self.here() {
            return (0, 0);
        }
        let st = self.shared.lock();
        let queued = st.jobs.iter().map(|j| (j.source, j.names.len()));
        st.running
            .map(|(s, n, _)| (s, n))
            .into_iter()
            .chain(queued)
            .fold((0, 0), |(mine, all), (s, n)| {
                (mine + if s == source { n } else { 0 }, all + n)
            })
    }

    /// Bytes of the spares queued, being made or made and not handed over yet
    /// (any source): on disk, or about to be, and not in the store's count.
    pub fn bytes_ahead(&self) -> u64 {
        if !self.here() {
            return 0;
        }
        let st = self.shared.lock();
        let queued: u64 = st
            .jobs
            .iter()
            .map(|j| (j.names.len() * j.prefill) as u64)
            .sum();
        let running = st.running.map_or(0, |(_, n, p)| (n * p) as u64);
        let ready: u64 = st.ready.iter().map(|r| r.2).sum();
        queued + running + ready
    }

    /// Takes the durable spares of `source` made so far, with their sizes.
    pub fn take(&self, source: u8) -> Vec<(PathBuf, u64)> {
        if !self.here() {
            return Vec::new();
        }
        let mut st = self.shared.lock();
        let mut out = Vec::new();
        st.ready.retain(|(s, p, size)| {
            if *s == source {
                out.push((p.clone(), *size));
                false
            } else {
                true
            }
        });
        out
    }

    /// Drops queued jobs, waits for the running one and forgets every spare
    /// not handed over (before a mount lists the directories itself: files
    /// made so far are found there as spares).
    pub fn quiesce(&self) {
        if !self.here() {
            return;
        }
        let mut st = self.shared.lock();
        st.jobs.clear();
        while st.running.is_some() {
            st = self
                .shared
                .wake
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.ready.clear();
    }

    /// Counters so far.
    pub fn counts(&self) -> MakerCounts {
        if !self.here() {
            return MakerCounts::default();
        }
        let st = self.shared.lock();
        MakerCounts {
            created: st.created,
            dir_syncs: st.dir_syncs,
            syncs: st.syncs,
            failures: st.failures,
        }
    }
}

impl Drop for SpareMaker {
    fn drop(&mut self) {
        if !self.here() {
            // A fork()ed child: no thread to stop or join, and the mutex may be
            // held forever. Leave both alone (the handle is forgotten, not
            // detached: the thread it names is the parent's).
            core::mem::forget(self.thread.take());
            return;
        }
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The helper's loop: one job at a time until told to stop.
fn run<F: FileSystem>(mut fs: F, shared: &Shared) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                if !st.jobs.is_empty() {
                    break;
                }
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            let job = st.jobs.remove(0);
            st.running = Some((job.source, job.names.len(), job.prefill));
            job
        };
        let (made, syncs, ok) = make(&mut fs, &job);
        let mut st = shared.lock();
        st.running = None;
        st.syncs += syncs;
        if ok {
            st.created += made.len() as u32;
            st.dir_syncs += 1;
            let size = job.prefill as u64;
            st.ready
                .extend(made.into_iter().map(|p| (job.source, p, size)));
        } else {
            st.failures += 1;
        }
        drop(st);
        // Wakes a `quiesce` waiting for the running job.
        shared.wake.notify_all();
    }
}

/// Creates the files of `job`, prefills and syncs each (its zeros and inode)
/// and then the directory (their names). On any failure the files made are
/// removed again (a file of zeros left behind would be a spare at the next
/// mount anyway).
fn make<F: FileSystem>(fs: &mut F, job: &Job) -> (Vec<PathBuf>, u64, bool) {
    let mut made = Vec::with_capacity(job.names.len());
    let mut syncs = 0;
    let mut ok = true;
    let zeros = vec![0u8; job.prefill];
    for p in &job.names {
        match fs.create_new(p) {
            Ok(mut f) => {
                made.push(p.clone());
                syncs += 1;
                if f.write_all_at(&zeros, 0).is_err() || f.sync_data().is_err() {
                    ok = false;
                    break;
                }
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    if ok && fs.sync_dir(&job.dir).is_err() {
        ok = false;
    }
    if !ok {
        for p in &made {
            let _ = fs.remove_file(p);
        }
        made.clear();
    }
    (made, syncs, ok)
}
