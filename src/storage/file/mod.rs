//! [`FileStorage`]: the [`Storage`] back end of the Linux gateway, a directory of
//! bounded append-only files (feature `std`).
//!
//! # Layout
//!
//! ```text
//! <root>/host/0000000000000001.spl          source 0
//! <root>/mgc/0000000000000002.spl           source 1
//! <root>/can_controller/0000000000000003.spl source 2
//! <root>/source_007/...                     any other source n (`source_{n:03}`)
//! <root>/quarantine/...                     damaged files moved aside at mount
//! ```
//!
//! Every data file carries a 64-bit sequence number in its header, global to
//! the store and growing by one for every file started, so the oldest file of
//! the whole store is the one with the smallest number, whatever its
//! directory. File names (`<16 hex digits>.spl`) are only unique; the order
//! comes from the header. A file holds at most [`FileConfig::file_size`] bytes
//! (64 KiB by default); all files together at most [`FileConfig::disk_limit`]
//! bytes (256 MiB by default).
//!
//! # File format
//!
//! A 20-byte header, then frames back to back. All integers little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"SPF2"` |
//! | 4 | 8 | file sequence number |
//! | 12 | 1 | data source of every run in the file |
//! | 13 | 3 | reserved `0xFF` |
//! | 16 | 4 | CRC-32C of bytes 0..16 |
//!
//! Frames are the frames of [`NorFlashStorage`](super::NorFlashStorage) with a
//! write size of 1 (no padding): tag (`0xB5` batch, `0xAC` acknowledgement),
//! `u16` length, CRC-8 header check, body (runs, or one acknowledgement mark),
//! CRC-32C. One difference: the CRC-32C covers the file's sequence number (8
//! bytes, little-endian) and then every byte of the frame before it, so a
//! frame is valid only in the file it was written to. That is what lets a file
//! be reused in place (below): the bytes of its previous life never pass as
//! frames of the new one. The encoding helpers are shared (`storage::frame`).
//! A batch handed to [`Storage::append`] becomes one frame per data source it
//! contains, each in the current file of that source.
//!
//! Files of the previous format (magic `"SPF1"`, CRCs over the frame only)
//! are still mounted and read, so an upgrade delivers what they hold; they are
//! never appended to or reused, and eviction unlinks them.
//!
//! # Durability: append + `fdatasync`, CRC-framed tails
//!
//! A frame is written at the file's known end (the end of its last good frame)
//! with `pwrite` and made durable with `fdatasync` before `append`/`ack` return
//! `Ok`. New files are not created on the write path: [`SPARES`] empty files
//! are pre-created in a source's directory at a time and made durable with
//! **one** directory `fsync`, and at the cap evicted files are reused; starting
//! a file is the first `pwrite` (header and frame together) into a spare, then
//! `fdatasync`. Why this is as safe as temp file + fsync + rename + directory
//! fsync for every batch:
//!
//! 1. `fdatasync` returns only when the written data and the file size are
//!    durable, so every frame `append` reported is on disk, and so is every
//!    byte before it (a file is only ever written at the end of its good
//!    frames). The file's name was durable before its first byte was written
//!    (the spare's directory was `fsync`ed; a reused file had a durable name).
//! 2. A crash during a write can leave, after the last durable frame, nothing,
//!    a prefix of the new frame, zeros (file size updated before the data), the
//!    whole frame, or (in a reused file) any mix of new bytes and bytes of its
//!    previous life. Every frame carries its length and a CRC-32C over the
//!    file's number and all its bytes, so mount accepts the whole frame or
//!    nothing, and nothing of a previous life. Whatever follows the last good
//!    frame is left in place, never read, and written over by the next frames
//!    ([`FileStats::tail_bytes`]). A file without any valid frame (a cut first
//!    write) becomes a spare again. A frame that was complete but not yet
//!    reported is kept: its records were written by the store and are
//!    complete, they are merely not known to be flushed.
//! 3. Durable frames are never written over (the next frame starts where they
//!    end), so a crash can never damage a frame that was already reported.
//!    Rename-based replacement would add a second `fsync` and a directory
//!    `fsync` per batch and buys nothing more.
//! 4. After any failed write or `fdatasync` the file is sealed: the store never
//!    appends to it again (after a failed `fdatasync` Linux may have dropped the
//!    dirty pages, so the page cache no longer tells what is on disk). The
//!    failed frame is cut off again if possible; if that fails too and the
//!    frame survives, its runs duplicate records the store still holds and will
//!    write again, and [`Storage::recover`] reports such overlaps only once.
//! 5. Every directory entry durable state depends on is made durable by an
//!    `fsync` of its directory before the call that changed it returns: the
//!    `unlink` of an evicted file, the `rename` that moves a reused file into
//!    another source's directory (both directories), every directory the
//!    store creates (its parent: root, source directories, `quarantine/`).
//!    One `fsync` per directory touched per call, after its evictions and
//!    before its frames are synced, so nothing is reported evicted that a
//!    cut could bring back, and nothing reported durable sits behind a
//!    directory entry a cut could lose, on journaling filesystems (renames
//!    atomic) and on filesystems with independent directory entries alike.
//!    Mount `fsync`s every directory it lists once (entries a killed process
//!    left in the page cache only).
//!
//! Renames are used by mount's repairs: a file damaged in the middle is
//! rewritten as `<name>.tmp` (write, `fdatasync`), the original is renamed into
//! `quarantine/`, the copy renamed into place, both directories `fsync`ed;
//! a crash in between is finished at the next mount (below). Reuse moves a file
//! into another source's directory with a rename made durable (both
//! directories `fsync`ed) before the file's first new frame is reported.
//!
//! # Acknowledgements
//!
//! [`Storage::ack`] appends an acknowledgement frame to the current file of the
//! sensor's source (the latest mark wins, as on flash). The mark only covers
//! records written before it, which are in the same file or in older files of
//! the same source. Files are only ever evicted oldest first (by the global
//! sequence number), so evicting the file that holds a mark evicts every
//! record the mark covers: marks never need to be copied forward, and an
//! acknowledged record is never reported unacknowledged after a restart.
//!
//! # Limits and eviction
//!
//! The disk limit bounds the bytes on disk ([`FileStats::bytes`]): data files
//! at their full size, stale tails included, an evicted file waiting for
//! reuse, and spares prefilled by the helper thread (those on their way are
//! reserved before they are made, and those made but not handed over yet are
//! counted as used). Before a frame is written, prefilled spares
//! and then the oldest files are removed until what the write adds fits under
//! the limit; the evicted files' runs are reported to `on_evict`
//! and counted ([`FileStats::files_evicted`], [`StorageStats::evicted_records`]).
//! Every deletion is counted in [`FileStats::files_deleted`].
//!
//! **Reusing evicted files.** When the eviction makes room for a new file of
//! some source, the evicted file becomes that file ([`FileStats::files_reused`]):
//! it is not unlinked; if it belongs to another source it is renamed into that
//! source's directory (same name; names are unique in the store and a file's
//! header says its source; both directories are `fsync`ed before the append
//! returns, so a cut cannot leave it in neither, on a filesystem whose
//! directory entries are independent); the new header and first frame are
//! written over it from its start.
//! Nothing is allocated, freed, created or deleted, and `fdatasync` writes data
//! only, so at the cap an append costs about what writing over an existing file
//! costs. At the cap (no room left for another whole file) a new file always
//! starts this way, even while an empty spare could take its first frame: a
//! file started empty would grow, growth at the cap evicts by unlinking, and the
//! room that leaves would let the next file start empty again, a cycle of
//! unlink and create (`at_the_cap_new_files_reuse_the_oldest`: every eviction of
//! the steady state reuses). So the oldest file goes when a new file starts,
//! not later while it fills, and the disk use at the cap stays within one file
//! of the limit (files are as full as their frames allow) rather than filling
//! the last partial file's worth of room. A file that holds a latest acknowledgement mark is
//! never reused (it is unlinked as below), and at most one reused file waits per
//! source. Until the
//! `fdatasync` of its first frame a reused file's previous life may come back
//! in a crash, in part (old header, some old frames): harmless for the same
//! reason as below, since the latest marks covering its acknowledged records
//! are in newer files. So the rule below also covers reuse: before a file
//! holding a latest mark is evicted, a reused file already written to is
//! `fdatasync`ed and one still waiting is truncated and `fdatasync`ed.
//!
//! **Evictions durable before they count.** The `unlink` of an evicted file is
//! followed by an `fsync` of its directory (one per directory per call)
//! before the call returns and before its runs go to `on_evict`: a cut after
//! the call never brings an evicted file back, so records reported lost stay
//! lost. (At the cap most evictions reuse the file instead, with no directory
//! operation when it stays in its source.) Within one call, what must not
//! happen is that a file with acknowledged records comes back while the file
//! holding their mark does not. The mark covers only
//! records of its own source written before it, i.e. in the same file or in
//! older files of the same source, and those were evicted first. So before
//! a file that holds the latest mark of any sensor is unlinked, every earlier
//! eviction is made durable: reused files as above, then the file's directory
//! is `fsync`ed, which makes every earlier deletion in it durable (counted in
//! [`FileStats::mark_dir_syncs`]; rare, since a sensor that is acknowledged
//! regularly has its latest mark in a recent file). If that file itself comes
//! back, it brings its marks with it.
//!
//! Free-space guard: before a new file is started the filesystem's available
//! space (`statvfs`) must be at least [`FileConfig::free_space_reserve`] plus
//! one file; otherwise nothing is written, the call fails,
//! [`FileStats::space_refusals`] counts it, [`FileStats::low_space`] is set and
//! [`FileStorage::last_error`] says [`FileError::LowSpace`]. Since a file never
//! grows beyond `file_size`, the store never takes the filesystem below the
//! reserve (other writers aside).
//!
//! # Recovery at mount
//!
//! Every file is read and checked frame by frame (with the number from its
//! header); a bad file never stops the mount, it costs at most its own damaged
//! frames:
//! - a bad header followed by a well-formed frame header (its frames cannot be
//!   checked without the file's number), or a file larger than allowed: moved
//!   to `quarantine/`;
//! - no valid frame at all (empty, a cut first write, a bad header with nothing
//!   frame-like after it): emptied, kept as a spare; a file of zeros no larger
//!   than `file_size` (a prefilled spare) is kept as it is;
//! - a tail after the last good frame with no valid frame in it (a torn write,
//!   the stale end of a reused file): left in place, not read, written over;
//! - damage in the middle (a valid frame after a bad one): the good frames are
//!   copied into a fresh file (temp + `fdatasync` + rename) and the original is
//!   moved to `quarantine/`;
//! - `.tmp` leftovers of an unfinished rewrite: deleted while the original is
//!   in place, else renamed into place (the copy was durable before the
//!   original was moved).
//!
//! # Files or directories removed under the store
//!
//! Before `append` or `ack` reports a frame durable, the file it went to is
//! checked (`fstat` of the handle against `stat` of its path: same device and
//! inode, still linked). A file unlinked, or whose directory was removed or
//! replaced (`rm -rf`, `rm -rf` + `mkdir`), fails that check; any `NotFound`
//! from the filesystem has the same effect. Then every indexed file and spare
//! is checked, the ones gone leave the index, the directories are made again
//! (parents `fsync`ed), and the call is retried once into a new file; so
//! the call returns `Ok` only for frames in files that are reachable by their
//! paths. The runs of every data file found gone are reported to the
//! `on_evict` of that call (or, when a `read` found the loss, of the next
//! `append`, `ack` or `evict_oldest`): one [`RunInfo`] per sensor and file,
//! with its kind and the file's range of that sensor's sequence numbers (split
//! into runs of at most 65,535), `meta` zero; counted in
//! [`FileStats::files_vanished`] and [`FileStats::vanished_records`]. A `read`
//! skips what vanished and returns the next stored record.
//!
//! # Errors
//!
//! The [`Storage`] trait returns [`StorageError`]: a full filesystem (`ENOSPC`,
//! `EDQUOT`, or less free space than the reserve) maps to
//! [`StorageError::NoSpace`], every other filesystem failure to
//! `StorageError::Flash(FlashErrorKind::Other)`, a transient device error. After
//! either the store keeps its records in RAM and retries later. A batch that
//! spans more sources than the disk limit leaves files for (making room for
//! one of its frames would evict a file an earlier frame of the same batch
//! went to) fails with [`StorageError::TooLarge`] ([`FileError::BatchTooWide`]),
//! nothing of it kept: the same records in batches over fewer sources fit. The detail
//! (operation, OS error, free space) is in [`FileStorage::last_error`].
//!
//! # Costs
//!
//! - `append`: one `pwrite` + one `fdatasync` per source the batch spans (the
//!   `fdatasync`s of a multi-source batch run concurrently), and one `fstat` +
//!   one `stat` per file written (is it still the file its path names?); one
//!   `statvfs` per file started; below the cap one directory `fsync` per
//!   [`SPARES`] files created; at the cap no file operation when the evicted
//!   file is reused in its own source, a `rename` and two directory `fsync`s
//!   when it changes source, else one `unlink` per file evicted and one
//!   directory `fsync` per directory evicted from (shared by the batch), plus
//!   one before the unlink if the file held a latest acknowledgement mark.
//!   Frame CRCs use a slice-by-16 table with feature `std`.
//! - `ack`: one 20-byte frame, one `pwrite` + `fdatasync`.
//! - `mount` reads and checks every file once (up to `disk_limit` bytes);
//!   `recover` reads every file once more.
//! - `read`: served from a one-file cache; a miss reads one file (at most
//!   `file_size` bytes) and checks its frames.
//!
//! # Memory
//!
//! Unlike the `no_std` core this back end allocates: an index of a few words per
//! file and per sensor in it, one encode buffer, and one cached file (at most
//! `file_size` bytes) for reads.

#![forbid(unsafe_code)]

mod fs;
pub(crate) mod inspect;
mod spares;

#[cfg(feature = "config")]
pub mod config;

pub use fs::{DirEntry, FileId, FileSystem, FsFile, StdFile, StdFs};

use super::frame::{
    self, ACK_BODY, CRC_LEN, CRC32, FRAME_HDR, Header, MAX_FRAME, RUN_HDR, RunParse, TAG_ACK,
    TAG_BATCH, TSD_EXTRA,
};
use super::{
    Batch, FlashErrorKind, LogEntry, ReadOut, RunInfo, SensorKey, Storage, StorageError,
    StorageStats, encoded_len, run_encoded_len, validate_batch,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes of the file header.
pub const FILE_HEADER: usize = 20;
/// Magic at the start of every data file.
const FILE_MAGIC: [u8; 4] = *b"SPF2";
/// Magic of the previous format (frame CRCs without the file number): such
/// files are read, never written to or reused.
const LEGACY_MAGIC: [u8; 4] = *b"SPF1";
/// Name of the quarantine directory.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Extension of data files.
const EXT: &str = ".spl";
/// Extension of files being created.
const TMP_EXT: &str = ".tmp";
/// Default largest file (64 KiB).
pub const DEFAULT_FILE_SIZE: u32 = 64 * 1024;
/// Default total cap (256 MiB).
pub const DEFAULT_DISK_LIMIT: u64 = 256 * 1024 * 1024;
/// Default free-space reserve (16 MiB).
pub const DEFAULT_FREE_SPACE_RESERVE: u64 = 16 * 1024 * 1024;
/// Smallest accepted `file_size`.
pub const MIN_FILE_SIZE: u32 = 256;
/// Largest accepted `file_size` (16 MiB).
pub const MAX_FILE_SIZE: u32 = 16 * 1024 * 1024;
/// Read cursors kept.
const CURSORS: usize = 8;
/// Empty files pre-created per directory with one directory fsync.
pub const SPARES: usize = 8;

/// Directory name of a data source: `host`, `mgc`, `can_controller` for 0, 1,
/// 2, `source_{n:03}` for any other.
pub fn source_dir_name(source: u8) -> String {
    match source {
        0 => "host".into(),
        1 => "mgc".into(),
        2 => "can_controller".into(),
        n => format!("source_{n:03}"),
    }
}

/// Settings of a [`FileStorage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileConfig {
    /// Root directory (created if missing).
    pub root: PathBuf,
    /// Largest file in bytes, header included (default 64 KiB).
    pub file_size: u32,
    /// Largest total of all data files in bytes (default 256 MiB).
    pub disk_limit: u64,
    /// Free space (bytes) the store leaves on the filesystem (default 16 MiB).
    pub free_space_reserve: u64,
    /// Make spare files ahead on a helper thread (default `true`): below the
    /// cap, starting a file then never waits for file creation, and the
    /// helper prefills each spare with `file_size` zero bytes (while batches
    /// take at most half a file), so the `fdatasync` of every batch written
    /// into it writes data only (no block allocation, no size change).
    /// Prefilled spares count against `disk_limit` (at most 2 x [`SPARES`] per
    /// source, fewer near the limit); prefilling writes each file's bytes twice
    /// during the first fill only (at the cap evicted files are reused). With `false` spares
    /// are empty files made on the write path, [`SPARES`] at a time, and
    /// every filesystem call happens on the caller's thread in a fixed order.
    pub background_spares: bool,
}

impl FileConfig {
    /// Defaults for `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            file_size: DEFAULT_FILE_SIZE,
            disk_limit: DEFAULT_DISK_LIMIT,
            free_space_reserve: DEFAULT_FREE_SPACE_RESERVE,
            background_spares: true,
        }
    }

    /// Checks the values: `file_size` in
    /// [`MIN_FILE_SIZE`]`..=`[`MAX_FILE_SIZE`], `disk_limit >= 2 * file_size`,
    /// non-empty root.
    pub fn validate(&self) -> Result<(), FileError> {
        if self.root.as_os_str().is_empty()
            || !(MIN_FILE_SIZE..=MAX_FILE_SIZE).contains(&self.file_size)
            || self.disk_limit < 2 * self.file_size as u64
        {
            return Err(FileError::Config);
        }
        Ok(())
    }
}

/// Filesystem operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    /// Creating a directory.
    CreateDir,
    /// Listing a directory.
    ListDir,
    /// Opening or creating a file.
    Open,
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// `fdatasync` of a file.
    Sync,
    /// Truncating a file.
    Truncate,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// `fsync` of a directory.
    SyncDir,
    /// `statvfs`.
    StatFs,
    /// `stat`/`fstat`: checking that a file written is still the one its path
    /// names (`NotFound`: it was unlinked or its directory removed).
    Stat,
}

/// Detailed error of a [`FileStorage`] (the trait methods return the coarse
/// [`StorageError`]; this is kept in [`FileStorage::last_error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// A filesystem call failed.
    Io {
        /// Which call.
        op: FileOp,
        /// `std::io::ErrorKind` of the error.
        kind: io::ErrorKind,
        /// OS error number (`ENOSPC` = 28, `EIO` = 5, ...), if any.
        errno: Option<i32>,
    },
    /// The free-space guard refused to write: the filesystem has `available`
    /// bytes, the store keeps `reserve` free and needs one more file.
    LowSpace {
        /// Bytes available (`statvfs`).
        available: u64,
        /// Configured reserve.
        reserve: u64,
    },
    /// Invalid [`FileConfig`].
    Config,
    /// A batch spans more sources than the disk limit leaves files for: making
    /// room for the frame of one of them would evict a file an earlier frame of
    /// the same batch was just written to. Nothing of the batch was kept (the
    /// frames written are cut back); maps to [`StorageError::TooLarge`]: the
    /// same records in batches over fewer sources fit.
    BatchTooWide,
    /// A file with a valid header numbered near the top of the range mount
    /// accepts (only a forged or damaged file can be) leaves no number for a
    /// new file: starting one is refused (nothing is lost; the caller keeps the
    /// records, and the mark or batch can be retried once that file is gone).
    NumbersExhausted,
}

impl FileError {
    fn io(op: FileOp, e: &io::Error) -> Self {
        FileError::Io {
            op,
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }

    /// Whether the error means "the filesystem is (nearly) full" (`ENOSPC`,
    /// `EDQUOT` or the free-space guard).
    pub fn is_no_space(&self) -> bool {
        match *self {
            FileError::LowSpace { .. } => true,
            FileError::Io { kind, errno, .. } => {
                kind == io::ErrorKind::StorageFull || matches!(errno, Some(28) | Some(122))
            }
            FileError::Config | FileError::BatchTooWide | FileError::NumbersExhausted => false,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { op, kind, errno } => {
                write!(f, "file storage: {op:?} failed: {kind}")?;
                if let Some(e) = errno {
                    write!(f, " (os error {e})")?;
                }
                Ok(())
            }
            FileError::LowSpace { available, reserve } => write!(
                f,
                "file storage: filesystem nearly full ({available} bytes available, reserve {reserve} bytes): writing stopped"
            ),
            FileError::Config => write!(f, "file storage: invalid configuration"),
            FileError::BatchTooWide => write!(
                f,
                "file storage: batch spans more sources than the disk limit leaves files for"
            ),
            FileError::NumbersExhausted => write!(
                f,
                "file storage: a file numbered near the top of the range leaves no number for a new file"
            ),
        }
    }
}

impl std::error::Error for FileError {}

impl From<FileError> for StorageError {
    fn from(e: FileError) -> Self {
        if e.is_no_space() {
            StorageError::NoSpace
        } else if e == FileError::BatchTooWide {
            StorageError::TooLarge
        } else {
            StorageError::Flash(FlashErrorKind::Other)
        }
    }
}

/// Counters specific to the file back end (this process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileStats {
    /// Data files now.
    pub files: u32,
    /// Bytes on disk now: data files, and evicted files kept for reuse
    /// (what the disk limit bounds).
    pub bytes: u64,
    /// Configured disk limit.
    pub disk_limit: u64,
    /// Data files started (first write into a spare).
    pub files_created: u32,
    /// Empty spare files pre-created (on the write path or ahead).
    pub spares_created: u32,
    /// Of those, made ahead by the helper thread
    /// ([`FileConfig::background_spares`]).
    pub spares_ahead: u32,
    /// Empty spare files ready now.
    pub spares: u32,
    /// Files deleted, for any reason (eviction, rollback, `.tmp` leftovers).
    pub files_deleted: u32,
    /// Files deleted by eviction (oldest first, at the cap or by `evict_oldest`).
    pub files_evicted: u32,
    /// Evicted files kept as the next file of their source (written over, no
    /// `unlink` and no new file; see "Reusing evicted files" in the module docs).
    pub files_reused: u32,
    /// Directory fsyncs made before evicting a file that held the latest
    /// acknowledgement mark of some sensor.
    pub mark_dir_syncs: u32,
    /// Files moved to `quarantine/`.
    pub quarantined: u32,
    /// Files without a complete first frame (a cut first write) emptied at
    /// mount to be spares again.
    pub truncated_files: u32,
    /// Bytes cut off by those.
    pub truncated_bytes: u64,
    /// Bytes found after the last good frame of data files at mount (torn
    /// appends, stale ends of reused files): left in place, never read,
    /// written over by later appends.
    pub tail_bytes: u64,
    /// Runs (or parts of runs) not reported by `recover` because an earlier run
    /// already holds the same records (left over from a failed append).
    pub duplicate_runs: u32,
    /// Writes refused by the free-space guard.
    pub space_refusals: u32,
    /// Whether the last free-space check found the filesystem below the reserve.
    pub low_space: bool,
    /// Bytes available at the last free-space check.
    pub available_bytes: u64,
    /// Failed filesystem calls.
    pub io_errors: u32,
    /// Appends or acknowledgements undone after a failure.
    pub rollbacks: u32,
    /// `fdatasync` calls on data files.
    pub syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
    /// Data files found gone while the store ran (unlinked, or their
    /// directory removed or replaced, by someone else); their runs were
    /// reported to `on_evict`.
    pub files_vanished: u32,
    /// Records of those files (acknowledged or not).
    pub vanished_records: u32,
}

/// Range of sequence numbers of one sensor inside one file.
#[derive(Clone, Copy, Debug)]
struct KeyRange {
    key: SensorKey,
    kind: super::RecordKind,
    first: u32,
    end: u32,
}

/// Index entry of one data file.
#[derive(Clone, Debug)]
struct FileMeta {
    source: u8,
    path: PathBuf,
    /// Valid bytes (header plus good frames); appends go here.
    len: u64,
    /// Bytes on disk, `>= len`: after `len` a torn frame or the stale end of
    /// a reused file, never read, written over by the next appends.
    size: u64,
    /// Never appended to again.
    sealed: bool,
    /// CRC seed of its frames (`None`: previous format, read only).
    seed: Option<u64>,
    keys: Vec<KeyRange>,
}

/// What mount found in one file.
enum Mounted {
    Data(u64, FileMeta),
    /// A spare and its size (non-zero: prefilled with zeros).
    Spare(PathBuf, u64),
    Gone,
}

/// Source of a directory name (inverse of [`source_dir_name`]).
fn dir_source(name: &str) -> Option<u8> {
    match name {
        "host" => Some(0),
        "mgc" => Some(1),
        "can_controller" => Some(2),
        _ => {
            let n: u8 = name.strip_prefix("source_")?.parse().ok()?;
            (n > 2 && source_dir_name(n) == name).then_some(n)
        }
    }
}

/// Undo record of one frame written during an append.
struct Undo {
    seq: u64,
    created: bool,
    prev_len: u64,
    prev_keys: Vec<KeyRange>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    used: bool,
    key: SensorKey,
    next: u32,
    file: u64,
    off: u32,
}

/// A verified frame of the cached file.
#[derive(Clone, Copy, Debug)]
struct FrameRef {
    off: u32,
    len: u32,
    tag: u8,
}

/// Whether an error says a file or directory is gone (`NotFound`).
fn gone(e: &FileError) -> bool {
    matches!(e, FileError::Io { kind, .. } if *kind == io::ErrorKind::NotFound)
}

/// Serial-number "a is after b".
const fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn file_header(seq: u64, source: u8) -> [u8; FILE_HEADER] {
    let mut h = [0xFFu8; FILE_HEADER];
    h[..4].copy_from_slice(&FILE_MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12] = source;
    let c = CRC32.checksum(&h[..16]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// A header's (file number, source, CRC seed); the seed is `None` for a file
/// of the previous format (`SPF1`).
fn parse_file_header(h: &[u8]) -> Option<(u64, u8, Option<u64>)> {
    if h.len() < FILE_HEADER
        || (h[..4] != FILE_MAGIC && h[..4] != LEGACY_MAGIC)
        || h[13..16] != [0xFF; 3]
    {
        return None;
    }
    let c = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if CRC32.checksum(&h[..16]) != c {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&h[4..12]);
    let seq = u64::from_le_bytes(s);
    // A number no store can have reached is damage (it would overflow `next_seq`).
    let seed = (h[..4] == FILE_MAGIC).then_some(seq);
    (seq <= MAX_FILE_SEQ).then_some((seq, h[12], seed))
}

/// Largest file sequence number accepted at mount (in a name or a header). Numbers
/// grow by one per file started, so anything above this is damage; rejecting it keeps
/// `next_seq` (one past the largest number seen) from overflowing at mount.
const MAX_FILE_SEQ: u64 = u64::MAX - 0xFFFF;

/// CRC-32C of a frame (`body` = every byte before the CRC) in the file whose
/// CRC seed is `seed` (its sequence number): the number goes into the CRC
/// first, so a frame is valid only in the file it was written to, never in the
/// stale bytes a reused file still holds from its previous life. `None`: a file
/// of the previous format, whose CRCs cover the frame only.
fn frame_crc(seed: Option<u64>, body: &[u8]) -> u32 {
    let mut d = CRC32.digest();
    if let Some(seq) = seed {
        d.update(&seq.to_le_bytes());
    }
    d.update(body);
    d.finalize()
}

/// Writes the CRC of the frame in `frame` (its last [`CRC_LEN`] bytes) for
/// the file `seq`.
fn set_frame_crc(frame: &mut [u8], seq: u64) {
    let body = frame.len() - CRC_LEN;
    let c = frame_crc(Some(seq), &frame[..body]);
    frame[body..].copy_from_slice(&c.to_le_bytes());
}

/// Checks the frame at `off` of `buf`, an image of the file with CRC seed
/// `seed`: header, CRC and body structure.
fn check_frame(buf: &[u8], off: usize, seed: Option<u64>) -> Option<FrameRef> {
    if off + FRAME_HDR + CRC_LEN > buf.len() {
        return None;
    }
    let h = [buf[off], buf[off + 1], buf[off + 2], buf[off + 3]];
    let Header::Frame { tag, len } = frame::parse_frame_header(h, buf.len() - off, 1) else {
        return None;
    };
    let body_end = off + len - CRC_LEN;
    let mut c = [0u8; CRC_LEN];
    c.copy_from_slice(&buf[body_end..off + len]);
    if frame_crc(seed, &buf[off..body_end]) != u32::from_le_bytes(c) {
        return None;
    }
    let fr = FrameRef {
        off: off as u32,
        len: len as u32,
        tag,
    };
    if tag == TAG_ACK {
        if len != FRAME_HDR + ACK_BODY + CRC_LEN
            || frame::parse_ack_body(&buf[off + FRAME_HDR..body_end]).is_none()
        {
            return None;
        }
        return Some(fr);
    }
    let mut p = off + FRAME_HDR;
    let mut runs = 0;
    while p < body_end {
        match frame::parse_run_header(&buf[p..body_end], body_end - p) {
            RunParse::Run(_, hl, rl) => {
                p += hl + rl;
                runs += 1;
            }
            _ => return None,
        }
    }
    (runs > 0).then_some(fr)
}

/// Appends an acknowledgement frame to `out`, its CRC left to
/// [`set_frame_crc`] once the file is known.
fn push_ack_frame(out: &mut Vec<u8>, key: SensorKey, upto: u32) {
    out.extend_from_slice(&frame::frame_header(
        TAG_ACK,
        FRAME_HDR + ACK_BODY + CRC_LEN,
    ));
    out.extend_from_slice(&frame::ack_body(key, upto));
    out.extend_from_slice(&[0; CRC_LEN]);
}

/// Runs of a verified batch frame: (info, records offset in `buf`).
fn frame_runs(buf: &[u8], fr: FrameRef) -> impl Iterator<Item = (RunInfo, usize)> + '_ {
    let end = (fr.off + fr.len) as usize - CRC_LEN;
    let mut p = fr.off as usize + FRAME_HDR;
    core::iter::from_fn(move || {
        if p >= end {
            return None;
        }
        match frame::parse_run_header(&buf[p..end], end - p) {
            RunParse::Run(info, hl, rl) => {
                let rec = p + hl;
                p += hl + rl;
                Some((info, rec))
            }
            _ => None,
        }
    })
}

/// Result of checking a whole file image.
struct Scan {
    frames: Vec<FrameRef>,
    /// End of the last good frame.
    good_end: usize,
    /// A bad region was followed by a good frame.
    middle_damage: bool,
    bad_frames: u32,
}

fn scan_image(buf: &[u8], seed: Option<u64>) -> Scan {
    let mut s = Scan {
        frames: Vec::new(),
        good_end: FILE_HEADER,
        middle_damage: false,
        bad_frames: 0,
    };
    let mut off = FILE_HEADER;
    while off < buf.len() {
        if let Some(fr) = check_frame(buf, off, seed) {
            off += fr.len as usize;
            s.good_end = off;
            s.frames.push(fr);
            continue;
        }
        // Resynchronise: is there any valid frame further on?
        s.bad_frames += 1;
        match (off + 1..buf.len()).find(|&p| check_frame(buf, p, seed).is_some()) {
            Some(p) => {
                s.middle_damage = true;
                off = p;
            }
            None => break,
        }
    }
    s
}

fn update_keys(keys: &mut Vec<KeyRange>, info: &RunInfo) {
    let end = info.end_seq();
    match keys.iter_mut().find(|k| k.key == info.key) {
        Some(k) => {
            if after(k.first, info.first_seq) {
                k.first = info.first_seq;
            }
            if after(end, k.end) {
                k.end = end;
            }
        }
        None => keys.push(KeyRange {
            key: info.key,
            kind: info.kind,
            first: info.first_seq,
            end,
        }),
    }
}

/// Crash-safe [`Storage`] in a directory of bounded append-only files (see the
/// module docs for layout, format, durability and recovery).
///
/// Generic over the [`FileSystem`] layer so tests can inject faults; the
/// default is the real filesystem ([`StdFs`]).
#[derive(Debug)]
pub struct FileStorage<F: FileSystem = StdFs> {
    fs: F,
    cfg: FileConfig,
    mounted: bool,
    files: BTreeMap<u64, FileMeta>,
    /// Appendable file per source.
    current: HashMap<u8, u64>,
    handles: HashMap<u64, F::File>,
    dirs_made: Vec<u8>,
    /// Latest acknowledgement mark per sensor: (upto, file holding it).
    marks: HashMap<SensorKey, (u32, u64)>,
    /// Files ready to start a new file in, per source, with their size on
    /// disk: empty pre-created files (their names are durable), or an evicted
    /// file kept for reuse (at most one per source).
    spares: HashMap<u8, Vec<(PathBuf, u64)>>,
    /// Reused files whose new life is not durable yet (the `fdatasync` of
    /// their first frame makes it so).
    undurable_reuse: Vec<PathBuf>,
    /// Files written by the append or acknowledgement under way: never evicted
    /// by it (an eviction for a later frame of a batch must not take the file
    /// an earlier frame went to).
    batch_files: Vec<u64>,
    /// Directories whose entries changed (eviction unlinks, reuse renames,
    /// dropped reused files) and must be `fsync`ed before the next write is
    /// reported durable: one `fsync` per directory per batch.
    dirs_due: Vec<PathBuf>,
    /// Runs of files that vanished (unlinked or their directory removed by
    /// someone else), reported to the next `on_evict` the caller passes.
    lost_runs: Vec<RunInfo>,
    /// One past the largest file number in a valid header (header numbers of
    /// new files, and labels for new spare names).
    next_seq: u64,
    /// Numbers in the names of files found at mount at or above `next_seq`:
    /// skipped when a new spare is named, so a new name never hits an existing
    /// file (names are only labels; see `new_name_number`).
    taken_names: BTreeSet<u64>,
    total: u64,
    enc: Vec<u8>,
    cache_seq: Option<(u64, u64)>,
    cache: Vec<u8>,
    cache_frames: Vec<FrameRef>,
    cursors: [Cursor; CURSORS],
    victim: usize,
    stats: StorageStats,
    fstats: FileStats,
    last_error: Option<FileError>,
    /// Helper making spares ahead (started with the first file made).
    maker: Option<spares::SpareMaker>,
}

impl FileStorage<StdFs> {
    /// A store on the real filesystem. Call [`Storage::mount`] next.
    pub fn new(cfg: FileConfig) -> Result<Self, FileError> {
        Self::with_fs(StdFs, cfg)
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// A store on the given filesystem layer. Checks the configuration; call
    /// [`Storage::mount`] next.
    pub fn with_fs(fs: F, cfg: FileConfig) -> Result<Self, FileError> {
        cfg.validate()?;
        Ok(Self {
            fs,
            fstats: FileStats {
                disk_limit: cfg.disk_limit,
                ..FileStats::default()
            },
            cfg,
            mounted: false,
            files: BTreeMap::new(),
            current: HashMap::new(),
            handles: HashMap::new(),
            dirs_made: Vec::new(),
            spares: HashMap::new(),
            undurable_reuse: Vec::new(),
            batch_files: Vec::new(),
            dirs_due: Vec::new(),
            lost_runs: Vec::new(),
            marks: HashMap::new(),
            next_seq: 1,
            taken_names: BTreeSet::new(),
            total: 0,
            enc: Vec::new(),
            cache_seq: None,
            cache: Vec::new(),
            cache_frames: Vec::new(),
            cursors: [Cursor::default(); CURSORS],
            victim: 0,
            stats: StorageStats::default(),
            last_error: None,
            maker: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FileConfig {
        &self.cfg
    }

    /// The filesystem layer (tests use it to change injected faults).
    pub fn fs_mut(&mut self) -> &mut F {
        &mut self.fs
    }

    /// File-specific counters.
    pub fn file_stats(&self) -> FileStats {
        let mut f = FileStats {
            files: self.files.len() as u32,
            bytes: self.total,
            spares: self.spares.values().map(|v| v.len() as u32).sum(),
            ..self.fstats
        };
        if let Some(m) = &self.maker {
            let c = m.counts();
            f.spares_created += c.created;
            f.spares_ahead += c.created;
            f.dir_syncs += c.dir_syncs;
            f.syncs += c.syncs;
            f.io_errors += c.failures;
        }
        f
    }

    /// Failed filesystem calls plus writes refused by the free-space guard (this
    /// process; O(1), unlike [`FileStorage::file_stats`]): a change tells that
    /// [`FileStorage::last_error`] is new.
    pub fn failures(&self) -> u64 {
        u64::from(self.fstats.io_errors) + u64::from(self.fstats.space_refusals)
    }

    /// The detail of the most recent error (cleared by nothing; compare
    /// counters, e.g. [`FileStorage::failures`], to see whether it is new).
    pub fn last_error(&self) -> Option<FileError> {
        self.last_error
    }

    /// Paths of the data files, oldest first (for tests and tools).
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.files.values().map(|m| m.path.clone()).collect()
    }

    /// Directory of data source `source`.
    pub fn source_dir(&self, source: u8) -> PathBuf {
        self.cfg.root.join(source_dir_name(source))
    }

    fn fail(&mut self, e: FileError) -> FileError {
        if matches!(e, FileError::Io { .. }) {
            self.fstats.io_errors += 1;
        }
        self.last_error = Some(e);
        e
    }

    fn io<T>(&mut self, op: FileOp, r: io::Result<T>) -> Result<T, FileError> {
        r.map_err(|e| self.fail(FileError::io(op, &e)))
    }

    fn check_mounted(&self) -> Result<(), StorageError> {
        if self.mounted {
            Ok(())
        } else {
            Err(StorageError::NotMounted)
        }
    }

    fn largest_frame(&self) -> usize {
        (self.cfg.file_size as usize - FILE_HEADER).min(MAX_FRAME)
    }

    fn sync_dir(&mut self, p: &Path) -> Result<(), FileError> {
        self.fstats.dir_syncs += 1;
        let r = self.fs.sync_dir(p);
        self.io(FileOp::SyncDir, r)
    }

    fn remove_counted(&mut self, p: &Path) -> Result<(), FileError> {
        let r = self.fs.remove_file(p);
        self.io(FileOp::Remove, r)?;
        self.fstats.files_deleted += 1;
        Ok(())
    }

    /// Reads a whole file into `out`.
    fn read_image(&mut self, path: &Path, out: &mut Vec<u8>) -> Result<(), FileError> {
        let r = self.fs.open(path);
        let mut f = self.io(FileOp::Open, r)?;
        let r = f.size();
        let len = self.io(FileOp::Read, r)?;
        out.clear();
        out.resize(len as usize, 0);
        let r = f.read_exact_at(out, 0);
        self.io(FileOp::Read, r)
    }

    fn quarantine(&mut self, path: &Path, tag: &str) -> Result<(), FileError> {
        let qdir = self.cfg.root.join(QUARANTINE_DIR);
        self.make_dir(&qdir, false)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut n = 0u32;
        let existing: Vec<String> = {
            let r = self.fs.list_dir(&qdir);
            self.io(FileOp::ListDir, r)?
                .into_iter()
                .map(|e| e.name)
                .collect()
        };
        let mut target = format!("{tag}-{name}");
        while existing.contains(&target) {
            n += 1;
            target = format!("{tag}-{name}.{n}");
        }
        let r = self.fs.rename(path, &qdir.join(&target));
        self.io(FileOp::Rename, r)?;
        self.sync_dir(&qdir)?;
        if let Some(parent) = path.parent() {
            self.sync_dir(parent)?;
        }
        self.fstats.quarantined += 1;
        Ok(())
    }

    /// Checks one file at mount: a data file (kept, maybe with a tail left
    /// unread, or rewritten), a spare, or gone (quarantined).
    fn mount_file(
        &mut self,
        dir: &Path,
        dir_name: &str,
        name: &str,
        img: &mut Vec<u8>,
    ) -> Result<Mounted, FileError> {
        let path = dir.join(name);
        self.read_image(&path, img)?;
        self.stats.mount_bytes_read = self.stats.mount_bytes_read.saturating_add(img.len() as u32);
        if img.is_empty() {
            return Ok(Mounted::Spare(path, 0));
        }
        if img.len() > MAX_FILE_SIZE as usize {
            self.quarantine(&path, dir_name)?;
            return Ok(Mounted::Gone);
        }
        let Some((seq, source, seed)) = parse_file_header(img) else {
            // Frames cannot be checked without the file's number. A frame
            // header where the first frame starts: damaged data, keep it for
            // inspection. Otherwise the first write into a spare was cut.
            let data = img.len() >= FILE_HEADER + FRAME_HDR
                && matches!(
                    frame::parse_frame_header(
                        [
                            img[FILE_HEADER],
                            img[FILE_HEADER + 1],
                            img[FILE_HEADER + 2],
                            img[FILE_HEADER + 3]
                        ],
                        img.len() - FILE_HEADER,
                        1
                    ),
                    Header::Frame { .. }
                );
            if data {
                self.stats.bad_frames += 1;
                self.quarantine(&path, dir_name)?;
                return Ok(Mounted::Gone);
            }
            if img.len() as u64 <= self.cfg.file_size as u64 && img.iter().all(|&b| b == 0) {
                // A prefilled spare (see `spares`): kept as it is.
                return Ok(Mounted::Spare(path, img.len() as u64));
            }
            self.cut_file(&path, 0, img.len() as u64)?;
            return Ok(Mounted::Spare(path, 0));
        };
        let scan = scan_image(img, seed);
        if scan.frames.is_empty() {
            // No frame was ever made durable here: the first write into a
            // spare (or a reused file) was cut. Back to a spare.
            self.cut_file(&path, 0, img.len() as u64)?;
            return Ok(Mounted::Spare(path, 0));
        }
        self.stats.bad_frames += scan.bad_frames;
        let mut size = img.len() as u64;
        let mut len = size;
        if scan.middle_damage {
            // Copy the good frames into a fresh file, quarantine the original.
            let mut clean = Vec::with_capacity(img.len());
            clean.extend_from_slice(&img[..FILE_HEADER]);
            for fr in &scan.frames {
                clean.extend_from_slice(&img[fr.off as usize..(fr.off + fr.len) as usize]);
            }
            let tmp = path.with_extension(&TMP_EXT[1..]);
            self.write_new(&tmp, &clean)?;
            self.quarantine(&path, dir_name)?;
            let r = self.fs.rename(&tmp, &path);
            self.io(FileOp::Rename, r)?;
            self.sync_dir(dir)?;
            *img = clean;
            len = img.len() as u64;
            size = len;
        } else if (scan.good_end as u64) < len {
            // A torn last frame, or the stale end of a reused file: left in
            // place, never read (no frame there passes the check for this
            // file's number), written over by the next appends.
            len = scan.good_end as u64;
            self.fstats.tail_bytes += size - len;
            img.truncate(scan.good_end);
        }
        let frames = if scan.middle_damage {
            scan_image(img, seed).frames
        } else {
            scan.frames
        };
        let mut keys = Vec::new();
        for fr in frames.iter() {
            if fr.tag == TAG_ACK {
                let b = &img[fr.off as usize + FRAME_HDR..];
                // Marks are only ever written into a file of the sensor's own source;
                // one in another source's file is foreign and must not win by number.
                if let Some((key, upto)) = frame::parse_ack_body(b)
                    && key.source == source
                {
                    let newer = self.marks.get(&key).is_none_or(|&(_, f)| f <= seq);
                    if newer {
                        self.marks.insert(key, (upto, seq));
                    }
                }
                continue;
            }
            for (info, _) in frame_runs(img, *fr) {
                update_keys(&mut keys, &info);
            }
        }
        Ok(Mounted::Data(
            seq,
            FileMeta {
                source,
                path,
                len,
                size,
                // Files of the previous format are read, never written to.
                sealed: seed.is_none() || len >= self.cfg.file_size as u64,
                seed,
                keys,
            },
        ))
    }

    /// Cuts a file back to `len` (from `was` bytes) durably, counted.
    fn cut_file(&mut self, path: &Path, len: u64, was: u64) -> Result<(), FileError> {
        let r = self.fs.open(path);
        let mut f = self.io(FileOp::Open, r)?;
        let r = f.set_len(len);
        self.io(FileOp::Truncate, r)?;
        self.fstats.syncs += 1;
        let r = f.sync_data();
        self.io(FileOp::Sync, r)?;
        self.fstats.truncated_files += 1;
        self.fstats.truncated_bytes += was - len;
        Ok(())
    }

    /// Writes a complete new file: create, write, `fdatasync` (no rename).
    fn write_new(&mut self, path: &Path, bytes: &[u8]) -> Result<F::File, FileError> {
        let _ = self.fs.remove_file(path);
        let r = self.fs.create_new(path);
        let mut f = self.io(FileOp::Open, r)?;
        let r = f.write_all_at(bytes, 0);
        self.io(FileOp::Write, r)?;
        self.fstats.syncs += 1;
        let r = f.sync_data();
        self.io(FileOp::Sync, r)?;
        Ok(f)
    }

    fn do_mount(&mut self) -> Result<(), FileError> {
        self.mounted = false;
        if let Some(m) = &self.maker {
            // Spares it made are found in the directories like any other.
            m.quiesce();
        }
        self.files.clear();
        self.current.clear();
        self.handles.clear();
        self.dirs_made.clear();
        self.spares.clear();
        self.undurable_reuse.clear();
        self.marks.clear();
        self.cache_seq = None;
        self.cursors = [Cursor::default(); CURSORS];
        self.stats = StorageStats {
            sector_size: self.cfg.file_size,
            ..StorageStats::default()
        };
        self.fstats = FileStats {
            disk_limit: self.cfg.disk_limit,
            ..FileStats::default()
        };
        self.dirs_due.clear();
        self.lost_runs.clear();
        let root = self.cfg.root.clone();
        self.make_dir(&root, false)?;
        let r = self.fs.list_dir(&root);
        let mut dirs = self.io(FileOp::ListDir, r)?;
        dirs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut img = Vec::new();
        let mut max_seq = 0u64;
        let mut names = BTreeSet::new();
        for d in dirs.iter().filter(|d| d.is_dir && d.name != QUARANTINE_DIR) {
            let dir = root.join(&d.name);
            // A source's directory exists when it is listed, whatever the
            // headers of the files in it say (a file may sit in another
            // source's directory).
            let dir_src = dir_source(&d.name);
            if let Some(src) = dir_src
                && !self.dirs_made.contains(&src)
            {
                self.dirs_made.push(src);
            }
            let r = self.fs.list_dir(&dir);
            let Ok(mut entries) = r else {
                let _ = self.io(FileOp::ListDir, r);
                continue;
            };
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            // `.tmp` files are rewrites of damaged files (see the module docs).
            // With the original still in place the rewrite did not finish:
            // delete it. Without it the crash came between the two renames and
            // the copy (durable before the first rename) takes its place.
            for i in 0..entries.len() {
                let Some(stem) = entries[i].name.strip_suffix(TMP_EXT) else {
                    continue;
                };
                let spl = format!("{stem}{EXT}");
                let tmp = dir.join(&entries[i].name);
                if entries.iter().any(|e| e.name == spl) {
                    let _ = self.remove_counted(&tmp);
                } else {
                    let r = self.fs.rename(&tmp, &dir.join(&spl));
                    if self.io(FileOp::Rename, r).is_ok() && self.sync_dir(&dir).is_ok() {
                        entries.push(DirEntry {
                            name: spl,
                            is_dir: false,
                        });
                    }
                }
            }
            for e in entries.iter().filter(|e| !e.is_dir) {
                let Some(name_seq) = e
                    .name
                    .strip_suffix(EXT)
                    .filter(|s| s.len() == 16)
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .filter(|&s| s <= MAX_FILE_SEQ)
                else {
                    continue;
                };
                // A name is only a label (a spare's, or one from a reused
                // file's earlier life): it never sets the next header number,
                // it is only kept from being given again.
                names.insert(name_seq);
                // One bad file never stops the mount.
                match self.mount_file(&dir, &d.name, &e.name, &mut img) {
                    Ok(Mounted::Data(seq, meta)) => {
                        max_seq = max_seq.max(seq);
                        if self.files.contains_key(&seq) {
                            // Same number twice (copied by hand?): keep one.
                            let _ = self.quarantine(&meta.path, &d.name);
                            continue;
                        }
                        self.files.insert(seq, meta);
                    }
                    Ok(Mounted::Spare(path, size)) => match dir_src {
                        Some(src) => {
                            self.spares.entry(src).or_default().push((path, size));
                        }
                        None => {
                            let _ = self.remove_counted(&path);
                        }
                    },
                    Ok(Mounted::Gone) | Err(_) => {}
                }
            }
            // The names found here durable before anything is written into
            // them (a process killed before its directory fsync, without a
            // power cut, leaves entries that only the page cache holds). A
            // failure is counted; the mount goes on.
            let _ = self.sync_dir(&dir);
        }
        // Likewise the source directories' own entries.
        let _ = self.sync_dir(&root);
        self.total = self.files.values().map(|m| m.size).sum::<u64>()
            + self.spares.values().flatten().map(|s| s.1).sum::<u64>();
        // Header numbers come from valid headers only (at most
        // `MAX_FILE_SEQ`, see `parse_file_header`).
        self.next_seq = max_seq + 1;
        self.taken_names = names.split_off(&self.next_seq);
        // The newest file of each source stays appendable.
        for (&seq, m) in self.files.iter() {
            if !m.sealed {
                self.current.insert(m.source, seq);
            } else {
                self.current.remove(&m.source);
            }
        }
        self.mounted = true;
        Ok(())
    }

    /// Makes every reuse durable, before a directory `fsync` that must make
    /// all earlier evictions durable (see "Reusing evicted files" in the module
    /// docs): a reused file already written to is `fdatasync`ed (its new header
    /// and frames replace its previous life); one still waiting as a spare is
    /// truncated and `fdatasync`ed.
    fn settle_reused(&mut self) -> Result<(), FileError> {
        while let Some(p) = self.undurable_reuse.last().cloned() {
            let waiting = self.spares.values().flatten().any(|(q, _)| *q == p);
            match self.fs.open(&p) {
                Ok(mut f) => {
                    if waiting {
                        let r = f.set_len(0);
                        self.io(FileOp::Truncate, r)?;
                    }
                    self.fstats.syncs += 1;
                    let r = f.sync_data();
                    self.io(FileOp::Sync, r)?;
                    if waiting {
                        for (q, size) in self.spares.values_mut().flatten() {
                            if *q == p {
                                self.total -= *size;
                                *size = 0;
                            }
                        }
                    }
                }
                // Gone since (a failed first write unlinks it): nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.fail(FileError::io(FileOp::Open, &e))),
            }
            self.undurable_reuse.pop();
        }
        Ok(())
    }

    /// Physical size of the spare the next file of `source` will start in
    /// (non-zero for a prefilled spare or a reused file waiting there).
    fn next_spare_size(&self, source: u8) -> u64 {
        self.spares
            .get(&source)
            .and_then(|v| v.last())
            .map_or(0, |s| s.1)
    }

    /// Whether a reused file waits as the next spare of `source` (a reused
    /// file is always the last spare, since spares are taken from the end and
    /// made ones go in front; it is not durable until its first frame is).
    fn reused_waiting(&self, source: u8) -> bool {
        self.spares
            .get(&source)
            .and_then(|v| v.last())
            .is_some_and(|(p, _)| self.undurable_reuse.contains(p))
    }

    /// The file the next eviction takes: the oldest file, unless the append
    /// under way wrote to it (`batch_files`); then the oldest
    /// file of a source none of whose files it wrote to before that one. That
    /// file is the oldest of its own source, so its sensors lose a prefix of
    /// their records and a mark never outlives the records it covers (marks
    /// cover records of their own source only). `None`: no file, or every
    /// candidate was written by this append.
    fn eviction_candidate(&self) -> Option<u64> {
        if self.batch_files.is_empty() {
            return self.files.keys().next().copied();
        }
        let mut blocked: Vec<u8> = Vec::new();
        for (&seq, m) in &self.files {
            if self.batch_files.contains(&seq) {
                blocked.push(m.source);
                continue;
            }
            if !blocked.contains(&m.source) {
                return Some(seq);
            }
        }
        None
    }

    /// Evicts the oldest file (see `eviction_candidate`),
    /// reporting its runs. `false` if there is none.
    /// With `reuse_for` naming a source (a new file of that source is about to
    /// start), no latest acknowledgement mark in the file and no other reused
    /// file waiting in that source, the file is kept, contents and all, as the
    /// spare that new file starts in (moved into that source's directory if it
    /// is another one's), instead of being unlinked.
    fn evict_one(
        &mut self,
        on_evict: &mut impl FnMut(RunInfo),
        reuse_for: Option<u8>,
    ) -> Result<bool, FileError> {
        let Some(seq) = self.eviction_candidate() else {
            return Ok(false);
        };
        // Never append to a file that is going away.
        self.seal(seq);
        let (path, source) = {
            let m = &self.files[&seq];
            (m.path.clone(), m.source)
        };
        let holds_mark = self.marks.values().any(|&(_, f)| f == seq);
        if holds_mark {
            // It holds a latest acknowledgement mark: make every earlier
            // eviction in its directory durable first (see the module docs).
            self.settle_reused()?;
            if let Some(dir) = path.parent() {
                let dir = dir.to_path_buf();
                self.sync_dir(&dir)?;
                self.fstats.mark_dir_syncs += 1;
            }
        }
        let mut img = Vec::new();
        let read_ok = self.read_image(&path, &mut img).is_ok();
        let mut reuse = None;
        if let Some(to) = reuse_for
            && !holds_mark
            && self.files[&seq].seed.is_some()
            && !self.reused_waiting(to)
        {
            reuse = if to == source {
                Some(path.clone())
            } else {
                // Same name in the other directory (names are unique in the
                // store; the file's header says its source).
                let dir = self.ensure_dir(to)?;
                let moved = dir.join(path.file_name().unwrap_or_default());
                let ok = self.fs.rename(&path, &moved).is_ok();
                if ok {
                    // Both entries durable before the file's new frames are
                    // reported: with independent directory entries a cut
                    // could otherwise leave it in neither directory.
                    self.dir_due(&path);
                    self.dir_due(&moved);
                }
                ok.then_some(moved)
            };
        }
        if let Some(p) = &reuse {
            self.fstats.files_reused += 1;
            self.undurable_reuse.push(p.clone());
        } else {
            // Durable (directory fsync) before the call that evicts returns
            // and reports it: once per directory per batch.
            self.remove_counted(&path)?;
            self.dir_due(&path);
        }
        self.marks.retain(|_, &mut (_, f)| f != seq);
        let meta = self.files.remove(&seq).unwrap_or_else(|| unreachable!());
        if let (Some(p), Some(to)) = (reuse, reuse_for) {
            // Its bytes stay on disk (and in `total`) until they are written over.
            self.spares.entry(to).or_default().push((p, meta.size));
        } else {
            self.total -= meta.size;
        }
        self.handles.remove(&seq);
        if self.current.get(&meta.source) == Some(&seq) {
            self.current.remove(&meta.source);
        }
        if self.cache_seq.is_some_and(|(s, _)| s == seq) {
            self.cache_seq = None;
        }
        self.fstats.files_evicted += 1;
        self.stats.evicted_sectors += 1;
        if read_ok {
            img.truncate(meta.len as usize);
            for fr in scan_image(&img, meta.seed).frames {
                if fr.tag == TAG_BATCH {
                    for (info, _) in frame_runs(&img, fr) {
                        self.stats.evicted_records += info.count as u32;
                        on_evict(info);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Checks the free-space guard before a new file is created.
    fn check_space(&mut self) -> Result<(), FileError> {
        let root = self.cfg.root.clone();
        let r = self.fs.available_bytes(&root);
        let available = self.io(FileOp::StatFs, r)?;
        self.fstats.available_bytes = available;
        let need = self
            .cfg
            .free_space_reserve
            .saturating_add(self.cfg.file_size as u64);
        if available < need {
            self.fstats.low_space = true;
            self.fstats.space_refusals += 1;
            return Err(self.fail(FileError::LowSpace {
                available,
                reserve: self.cfg.free_space_reserve,
            }));
        }
        self.fstats.low_space = false;
        Ok(())
    }

    fn ensure_dir(&mut self, source: u8) -> Result<PathBuf, FileError> {
        let dir = self.source_dir(source);
        if !self.dirs_made.contains(&source) {
            self.make_dir(&dir, true)?;
            self.dirs_made.push(source);
        }
        Ok(dir)
    }

    /// Creates `dir` and its missing ancestors durably: the parent of every
    /// directory created is `fsync`ed (so a first-boot cut cannot take the
    /// whole store, root and all), and with `sync_parent` the parent of `dir`
    /// even when `dir` existed (its entry may be as new as a crashed earlier
    /// run that made it).
    fn make_dir(&mut self, dir: &Path, sync_parent: bool) -> Result<(), FileError> {
        let mut missing: Vec<PathBuf> = Vec::new();
        for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            match self.fs.id(a) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(a.to_path_buf()),
                // Cannot tell: treat as made now (one more directory fsync).
                Err(_) => {
                    missing.push(a.to_path_buf());
                    break;
                }
            }
        }
        let r = self.fs.create_dir_all(dir);
        self.io(FileOp::CreateDir, r)?;
        let mut parents: Vec<PathBuf> = missing
            .iter()
            .rev()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if sync_parent
            && let Some(p) = dir.parent()
            && !p.as_os_str().is_empty()
            && !parents.iter().any(|q| q == p)
        {
            parents.push(p.to_path_buf());
        }
        for p in parents {
            self.sync_dir(&p)?;
        }
        Ok(())
    }

    /// Notes that the entries of `p`'s directory changed (see `dirs_due`).
    fn dir_due(&mut self, p: &Path) {
        if let Some(d) = p.parent()
            && !self.dirs_due.iter().any(|q| q == d)
        {
            self.dirs_due.push(d.to_path_buf());
        }
    }

    /// `fsync`s every directory due (see `dirs_due`), once each.
    fn flush_dirs(&mut self) -> Result<(), FileError> {
        while let Some(d) = self.dirs_due.last().cloned() {
            self.sync_dir(&d)?;
            self.dirs_due.pop();
        }
        Ok(())
    }

    /// Whether file `seq` is gone: its path names nothing, or another file
    /// than the handle held (replaced), or the handle's file has no name left.
    /// Layers that cannot tell (`Unsupported`) fall back to `open`.
    fn is_gone(&mut self, seq: u64) -> bool {
        let Some(path) = self.files.get(&seq).map(|m| m.path.clone()) else {
            return false;
        };
        let held = match self.handles.get_mut(&seq).map(|f| f.id()) {
            Some(Ok(id)) => Some(id),
            _ => None,
        };
        match self.fs.id(&path) {
            Ok(now) => held.is_some_and(|h| h.links == 0 || !h.same(&now)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => self
                .fs
                .open(&path)
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound),
            Err(_) => false,
        }
    }

    /// Checks, after its data was synced and before it is reported durable,
    /// that file `seq` is still the file its path names (not unlinked, its
    /// directory not removed or replaced). `NotFound` ([`FileOp::Stat`]) if not.
    fn verify_reachable(&mut self, seq: u64) -> Result<(), FileError> {
        if self.is_gone(seq) {
            return Err(self.fail(FileError::Io {
                op: FileOp::Stat,
                kind: io::ErrorKind::NotFound,
                errno: Some(2),
            }));
        }
        Ok(())
    }

    /// After a file was found gone (`NotFound` from any call): every indexed
    /// file and spare is checked; the ones gone leave the index and the runs
    /// of gone data files are queued for the next `on_evict` (from the index:
    /// per sensor its range of sequence numbers in the file and the kind, no
    /// timing), counted in [`FileStats::files_vanished`]. Directories are made
    /// again (and their parents `fsync`ed) before the next file is started.
    /// Returns whether anything was gone.
    fn handle_vanished(&mut self) -> bool {
        let seqs: Vec<u64> = self.files.keys().copied().collect();
        let mut any = false;
        for seq in seqs {
            if !self.is_gone(seq) {
                continue;
            }
            any = true;
            let Some(meta) = self.files.remove(&seq) else {
                continue;
            };
            self.total = self.total.saturating_sub(meta.size);
            self.handles.remove(&seq);
            if self.current.get(&meta.source) == Some(&seq) {
                self.current.remove(&meta.source);
            }
            if self.cache_seq.is_some_and(|(s, _)| s == seq) {
                self.cache_seq = None;
            }
            self.marks.retain(|_, &mut (_, f)| f != seq);
            self.fstats.files_vanished += 1;
            for k in &meta.keys {
                let mut first = k.first;
                while first != k.end {
                    let count = k.end.wrapping_sub(first).min(u16::MAX as u32);
                    self.fstats.vanished_records += count;
                    self.lost_runs.push(RunInfo {
                        key: k.key,
                        kind: k.kind,
                        first_seq: first,
                        count: count as u16,
                        meta: super::RunMeta::default(),
                    });
                    first = first.wrapping_add(count);
                }
            }
        }
        let mut spares = core::mem::take(&mut self.spares);
        for v in spares.values_mut() {
            let mut i = 0;
            while i < v.len() {
                let r = self.fs.id(&v[i].0);
                if r.is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
                    let (p, size) = v.remove(i);
                    self.total = self.total.saturating_sub(size);
                    self.undurable_reuse.retain(|q| *q != p);
                    any = true;
                } else {
                    i += 1;
                }
            }
        }
        self.spares = spares;
        let mut due = core::mem::take(&mut self.dirs_due);
        due.retain(|d| self.fs.id(d).is_ok());
        self.dirs_due = due;
        // Directories are made (and their parents synced) again on next use.
        self.dirs_made.clear();
        any
    }

    /// Hands the runs evicted by a call (`got`) and those of files found gone
    /// to the caller's `on_evict`, after the call made its evictions durable.
    fn deliver(&mut self, got: Vec<RunInfo>, on_evict: &mut impl FnMut(RunInfo)) {
        for r in got {
            on_evict(r);
        }
        for r in core::mem::take(&mut self.lost_runs) {
            on_evict(r);
        }
    }

    /// Seals a file after a failure: no more appends to it.
    fn seal(&mut self, seq: u64) {
        if let Some(m) = self.files.get_mut(&seq) {
            m.sealed = true;
            if self.current.get(&m.source) == Some(&seq) {
                self.current.remove(&m.source);
            }
        }
        self.handles.remove(&seq);
    }

    /// Writes the frame in `self.enc` for `source`, durably. Evicts oldest
    /// files first if the disk limit requires it.
    fn write_frame(
        &mut self,
        source: u8,
        on_evict: &mut impl FnMut(RunInfo),
        sync: bool,
    ) -> Result<Undo, FileError> {
        let need = self.enc.len() as u64;
        let fsize = self.cfg.file_size as u64;
        // At the cap (no room for another whole file) a new file starts in the
        // oldest file, reused, even while an empty spare would take its first
        // frame: a file started empty grows, and growth at the cap evicts by
        // unlinking, which then leaves room for the next file to start empty
        // again (a cycle of unlink + create). One attempt per new file.
        let mut reuse_first = true;
        loop {
            // Prefilled spares the helper has not handed over yet are on disk
            // (or about to be) without being in `total`: room for them is kept.
            let ahead = self
                .maker
                .as_ref()
                .filter(|m| m.here())
                .map_or(0, |m| m.bytes_ahead());
            let used = self.total + ahead;
            let target = self
                .current
                .get(&source)
                .copied()
                .filter(|s| self.files[s].len + need <= fsize);
            // What the disk use grows by: a reused file is written over its
            // stale bytes, which are counted already.
            let grow = match target {
                Some(t) => {
                    let m = &self.files[&t];
                    (m.len + need).saturating_sub(m.size)
                }
                None => (FILE_HEADER as u64 + need).saturating_sub(self.next_spare_size(source)),
            };
            let reuse_now = reuse_first
                && used + fsize > self.cfg.disk_limit
                && target.is_none()
                && self.next_spare_size(source) < fsize
                && !self.reused_waiting(source);
            reuse_first = false;
            if used + grow <= self.cfg.disk_limit {
                // A prefilled spare still gives its bytes back before data goes.
                if reuse_now
                    && (self.drop_prefilled(Some(source))
                        || self.evict_one(on_evict, Some(source))?)
                {
                    continue;
                }
                break;
            }
            let mut new_file = target.is_none();
            // A prefilled spare gives its bytes back before any data goes.
            if self.drop_prefilled(new_file.then_some(source)) {
                continue;
            }
            if let Some(t) = target
                && self.eviction_candidate() == Some(t)
            {
                // The file we would append to is the oldest one: start afresh.
                self.seal(t);
                new_file = true;
            }
            if self.eviction_candidate().is_none() && !self.files.is_empty() {
                // Every file that could go was written by this batch.
                return Err(self.fail(FileError::BatchTooWide));
            }
            if !self.evict_one(on_evict, new_file.then_some(source))? {
                break;
            }
        }
        let target = self
            .current
            .get(&source)
            .copied()
            .filter(|s| self.files[s].len + need <= fsize);
        if sync {
            // Evictions and moves of this call durable before its frame is.
            self.flush_dirs()?;
        }
        match target {
            Some(seq) => self.append_existing(seq, need, sync),
            None => self.create_file(source, sync),
        }
    }

    fn append_existing(&mut self, seq: u64, need: u64, sync: bool) -> Result<Undo, FileError> {
        let (path, prev_len, prev_keys) = {
            let m = &self.files[&seq];
            (m.path.clone(), m.len, m.keys.clone())
        };
        if !self.handles.contains_key(&seq) {
            let r = self.fs.open(&path);
            let f = self.io(FileOp::Open, r)?;
            self.handles.insert(seq, f);
        }
        set_frame_crc(&mut self.enc, seq);
        let res = {
            let f = self.handles.get_mut(&seq).unwrap_or_else(|| unreachable!());
            f.write_all_at(&self.enc, prev_len)
                .map_err(|e| (FileOp::Write, e))
                .and_then(|()| {
                    if sync {
                        f.sync_data().map_err(|e| (FileOp::Sync, e))
                    } else {
                        Ok(())
                    }
                })
        };
        self.fstats.syncs += u64::from(sync);
        if let Err((op, e)) = res {
            let err = self.fail(FileError::io(op, &e));
            self.cut_back(seq, prev_len);
            return Err(err);
        }
        let m = self.files.get_mut(&seq).unwrap_or_else(|| unreachable!());
        m.len += need;
        if m.len > m.size {
            self.total += m.len - m.size;
            m.size = m.len;
        }
        Ok(Undo {
            seq,
            created: false,
            prev_len,
            prev_keys,
        })
    }

    /// After a failure: cut the file back to `len` (best effort) and seal it.
    fn cut_back(&mut self, seq: u64, len: u64) {
        if let Some(f) = self.handles.get_mut(&seq) {
            let ok = f.set_len(len).and_then(|()| f.sync_data()).is_ok();
            if !ok {
                self.fstats.io_errors += 1;
            } else if let Some(m) = self.files.get_mut(&seq)
                && m.size > len
            {
                self.total -= m.size - len;
                m.size = len;
            }
        }
        if self.cache_seq.is_some_and(|(s, _)| s == seq) {
            self.cache_seq = None;
        }
        self.seal(seq);
    }

    /// A number for the name of a new spare: the next file number, skipping
    /// numbers in the names of files found at mount (names are labels; they
    /// must only never name an existing file, since a reused file keeps its
    /// name when it moves to another source's directory).
    fn new_name_number(&mut self) -> u64 {
        while self.taken_names.remove(&self.next_seq) {
            self.next_seq += 1;
        }
        let n = self.next_seq;
        self.next_seq += 1;
        n
    }

    /// Pre-creates [`SPARES`] empty files in `dir` with one directory fsync.
    fn make_spares(&mut self, source: u8, dir: &Path) -> Result<(), FileError> {
        let mut made = Vec::with_capacity(SPARES);
        let mut res = Ok(());
        // A name taken by a file the store does not know (e.g. one whose
        // mount failed) is skipped, a bounded number of times.
        let mut skips = 4 * SPARES;
        while made.len() < SPARES {
            let path = dir.join(format!("{:016x}{EXT}", self.new_name_number()));
            let r = self.fs.create_new(&path);
            match r {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && skips > 0 => {
                    skips -= 1;
                    continue;
                }
                _ => {}
            }
            match self.io(FileOp::Open, r) {
                Ok(_) => made.push(path),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_ok() {
            res = self.sync_dir(dir);
        }
        if let Err(e) = res {
            for p in made {
                if self.fs.remove_file(&p).is_ok() {
                    self.fstats.files_deleted += 1;
                }
            }
            return Err(e);
        }
        self.fstats.spares_created += made.len() as u32;
        self.spares
            .entry(source)
            .or_default()
            .extend(made.into_iter().rev().map(|p| (p, 0)));
        Ok(())
    }

    /// With [`FileConfig::background_spares`]: asks the helper for up to
    /// [`SPARES`] more spares of `source` while fewer than twice that are ready
    /// or on their way, as many as the disk limit leaves room for besides the
    /// spares not counted in it yet (at the cap evicted files are reused
    /// instead).
    fn spares_ahead(&mut self, source: u8, dir: &Path) {
        if !self.cfg.background_spares {
            return;
        }
        if self.maker.is_none() {
            self.maker = spares::SpareMaker::start(self.fs.clone());
        }
        // In a fork()ed child the helper does not run: spares on the write path.
        let Some(m) = self.maker.as_ref().filter(|m| m.here()) else {
            return;
        };
        let (pending, pending_all) = m.pending(source);
        let have = (self.spares.get(&source).map_or(0, Vec::len) + pending) as u64;
        // Files that will take a slot under the disk limit but are not counted
        // in `total` yet: spares on their way and empty ones, of every source.
        let uncounted =
            (pending_all + self.spares.values().flatten().filter(|s| s.1 == 0).count()) as u64;
        let room = self.cfg.disk_limit.saturating_sub(self.total) / self.cfg.file_size as u64;
        let n = room.saturating_sub(uncounted).min(SPARES as u64);
        if have >= 2 * SPARES as u64 || n == 0 {
            return;
        }
        let _ = m;
        let names: Vec<PathBuf> = (0..n)
            .map(|_| dir.join(format!("{:016x}{EXT}", self.new_name_number())))
            .collect();
        // Prefilling pays when a file takes two batches or more (each then
        // syncs data only; measured with 32 KB batches in 64 KiB files); a
        // file of one batch would only add the zeros' own write and sync.
        let fsize = self.cfg.file_size as usize;
        let prefill = if 2 * self.enc.len() <= fsize {
            fsize
        } else {
            0
        };
        if let Some(m) = &self.maker {
            m.request(source, dir.to_path_buf(), names, prefill);
        }
    }

    /// Moves the spares the helper made for `source` into its list, in front
    /// (a reused file waiting there stays last: it is taken next), and counts
    /// their bytes on disk.
    fn collect_ahead(&mut self, source: u8) {
        let Some(m) = &self.maker else {
            return;
        };
        let made = m.take(source);
        if !made.is_empty() {
            self.total += made.iter().map(|s| s.1).sum::<u64>();
            let v = self.spares.entry(source).or_default();
            v.splice(0..0, made.into_iter().rev());
        }
    }

    /// Unlinks one prefilled spare (lowest source first, the one it would take
    /// last first), except the one the next file of `keep_for` starts in and a
    /// reused file waiting. `false` if there is none.
    fn drop_prefilled(&mut self, keep_for: Option<u8>) -> bool {
        let found = self
            .spares
            .iter()
            .filter_map(|(&src, v)| {
                let n = v.len() - usize::from(keep_for == Some(src) && !v.is_empty());
                v[..n]
                    .iter()
                    .position(|(p, size)| *size > 0 && !self.undurable_reuse.contains(p))
                    .map(|i| (src, i))
            })
            .min();
        let Some((src, i)) = found else {
            return false;
        };
        let Some((path, size)) = self.spares.get_mut(&src).map(|v| v.remove(i)) else {
            return false;
        };
        self.drop_spare(&path, size);
        true
    }

    /// Drops a spare that failed: unlinked (an empty file that comes back is a
    /// spare again; a reused one that comes back is an evicted file coming back).
    fn drop_spare(&mut self, path: &Path, size: u64) {
        self.total -= size;
        if self.fs.remove_file(path).is_ok() {
            self.fstats.files_deleted += 1;
            if self.undurable_reuse.iter().any(|p| p == path) {
                // An evicted file: its unlink is durable before it counts.
                self.dir_due(path);
            }
        }
    }

    /// Starts a new file for `source` with the frame in `self.enc`: the first
    /// write into a spare (header and frame in one `pwrite`, then `fdatasync`).
    /// A reused spare is written over from its start; its stale bytes after the
    /// new frames never pass a frame check (the CRC covers the file's number).
    fn create_file(&mut self, source: u8, sync: bool) -> Result<Undo, FileError> {
        // File numbers near the end of what mount accepts (only after a valid
        // header with a huge number, i.e. a forged one): refuse rather than
        // number a file that the next mount would take as damage.
        if self.next_seq > MAX_FILE_SEQ - 2 * SPARES as u64 {
            return Err(self.fail(FileError::NumbersExhausted));
        }
        // The directories first: `statvfs` of a root removed under the store fails.
        let dir = self.ensure_dir(source)?;
        self.check_space()?;
        self.collect_ahead(source);
        if self.spares.get(&source).is_none_or(|v| v.is_empty()) {
            self.make_spares(source, &dir)?;
        }
        let (path, spare_size) = self
            .spares
            .get_mut(&source)
            .and_then(|v| v.pop())
            .unwrap_or_else(|| unreachable!());
        self.spares_ahead(source, &dir);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut bytes = Vec::with_capacity(FILE_HEADER + self.enc.len());
        bytes.extend_from_slice(&file_header(seq, source));
        bytes.extend_from_slice(&self.enc);
        set_frame_crc(&mut bytes[FILE_HEADER..], seq);
        let r = self.fs.open(&path);
        let mut f = match self.io(FileOp::Open, r) {
            Ok(f) => f,
            Err(e) => {
                self.drop_spare(&path, spare_size);
                return Err(e);
            }
        };
        self.fstats.syncs += u64::from(sync);
        let res = f
            .write_all_at(&bytes, 0)
            .map_err(|e| (FileOp::Write, e))
            .and_then(|()| {
                if sync {
                    f.sync_data().map_err(|e| (FileOp::Sync, e))
                } else {
                    Ok(())
                }
            });
        if let Err((op, e)) = res {
            let err = self.fail(FileError::io(op, &e));
            // Never reuse it: cut back (best effort) and unlink. If the frame
            // survives anyway, recover reports its records once.
            let _ = f.set_len(0);
            drop(f);
            self.drop_spare(&path, spare_size);
            return Err(err);
        }
        self.fstats.files_created += 1;
        if sync {
            // A reused file's new life is durable with its first frame.
            self.undurable_reuse.retain(|p| *p != path);
        }
        let len = bytes.len() as u64;
        let size = len.max(spare_size);
        if let Some(old) = self.current.insert(source, seq) {
            self.handles.remove(&old);
            if let Some(m) = self.files.get_mut(&old) {
                m.sealed = true;
            }
        }
        self.handles.insert(seq, f);
        self.files.insert(
            seq,
            FileMeta {
                source,
                path,
                len,
                size,
                sealed: false,
                seed: Some(seq),
                keys: Vec::new(),
            },
        );
        self.total += size - spare_size;
        Ok(Undo {
            seq,
            created: true,
            prev_len: 0,
            prev_keys: Vec::new(),
        })
    }

    /// Undoes frames written by a failed append.
    fn rollback(&mut self, undo: Vec<Undo>) {
        if undo.is_empty() {
            return;
        }
        self.fstats.rollbacks += 1;
        for u in undo.into_iter().rev() {
            let Some(m) = self.files.get(&u.seq) else {
                continue;
            };
            let (path, size, source) = (m.path.clone(), m.size, m.source);
            if u.created {
                self.handles.remove(&u.seq);
                if self.fs.remove_file(&path).is_ok() {
                    self.fstats.files_deleted += 1;
                    if let Some(p) = path.parent() {
                        let p = p.to_path_buf();
                        let _ = self.sync_dir(&p);
                    }
                } else {
                    self.fstats.io_errors += 1;
                }
                self.files.remove(&u.seq);
                self.total -= size;
                if self.current.get(&source) == Some(&u.seq) {
                    self.current.remove(&source);
                }
            } else {
                // Cuts the physical file too when it can (sizes follow).
                self.cut_back(u.seq, u.prev_len);
                if let Some(m) = self.files.get_mut(&u.seq) {
                    m.len = u.prev_len;
                    m.keys = u.prev_keys;
                }
            }
            if self.cache_seq.is_some_and(|(s, _)| s == u.seq) {
                self.cache_seq = None;
            }
        }
    }

    /// Encodes a batch frame of the runs of `source` into `self.enc`.
    fn encode_batch<B: Batch + ?Sized>(&mut self, batch: &B, source: u8) {
        let body: usize = (0..batch.runs())
            .map(|i| batch.info(i))
            .filter(|r| r.key.source == source)
            .map(|r| run_encoded_len(r.kind, r.count as usize))
            .sum();
        let len = FRAME_HDR + body + CRC_LEN;
        self.enc.clear();
        self.enc
            .extend_from_slice(&frame::frame_header(TAG_BATCH, len));
        for i in 0..batch.runs() {
            let info = batch.info(i);
            if info.key.source != source {
                continue;
            }
            let mut hb = [0u8; RUN_HDR + TSD_EXTRA];
            let hl = frame::run_header(&info, &mut hb);
            self.enc.extend_from_slice(&hb[..hl]);
            let size = info.kind.record_size();
            let n = info.count as usize * size;
            match batch.slice(i) {
                Some(r) if r.len() == n => self.enc.extend_from_slice(r),
                _ => {
                    let start = self.enc.len();
                    self.enc.resize(start + n, 0);
                    for k in 0..info.count as usize {
                        let at = start + k * size;
                        batch.record(i, k, &mut self.enc[at..at + size]);
                    }
                }
            }
        }
        // The CRC depends on the file the frame goes to (`set_frame_crc`).
        self.enc.extend_from_slice(&[0; CRC_LEN]);
    }

    fn append_inner<B: Batch + ?Sized>(
        &mut self,
        runs: &B,
        on_evict: &mut impl FnMut(RunInfo),
    ) -> Result<(), FileError> {
        let mut sources: Vec<u8> = Vec::new();
        for i in 0..runs.runs() {
            let s = runs.info(i).key.source;
            if !sources.contains(&s) {
                sources.push(s);
            }
        }
        // One source: write + fdatasync. Several: write every frame first,
        // then fdatasync the files concurrently (the filesystem commits them
        // together, so this costs about one sync instead of one per source).
        let defer = sources.len() > 1;
        let mut undo = Vec::with_capacity(sources.len());
        self.batch_files.clear();
        for &s in &sources {
            self.encode_batch(runs, s);
            match self.write_frame(s, on_evict, !defer) {
                Ok(u) => {
                    self.batch_files.push(u.seq);
                    undo.push(u);
                }
                Err(e) => {
                    self.batch_files.clear();
                    self.rollback(undo);
                    return Err(e);
                }
            }
            let seq = undo.last().map(|u| u.seq).unwrap_or_default();
            if let Some(m) = self.files.get_mut(&seq) {
                for i in 0..runs.runs() {
                    let info = runs.info(i);
                    if info.key.source == s {
                        update_keys(&mut m.keys, &info);
                    }
                }
            }
        }
        self.batch_files.clear();
        if defer && let Err(e) = self.flush_dirs().and_then(|()| self.sync_all(&undo)) {
            self.rollback(undo);
            return Err(e);
        }
        // Nothing is reported durable that went into a file unlinked under us.
        for i in 0..undo.len() {
            if let Err(e) = self.verify_reachable(undo[i].seq) {
                self.rollback(undo);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `fdatasync` of the files written by `undo`, concurrently.
    fn sync_all(&mut self, undo: &[Undo]) -> Result<(), FileError> {
        let seqs: Vec<u64> = undo.iter().map(|u| u.seq).collect();
        let files: Vec<&mut F::File> = self
            .handles
            .iter_mut()
            .filter(|(k, _)| seqs.contains(k))
            .map(|(_, f)| f)
            .collect();
        self.fstats.syncs += files.len() as u64;
        let results: Vec<io::Result<()>> = std::thread::scope(|sc| {
            let hs: Vec<_> = files
                .into_iter()
                .map(|f| sc.spawn(move || f.sync_data()))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("fdatasync thread panicked")))
                })
                .collect()
        });
        for r in results {
            self.io(FileOp::Sync, r)?;
        }
        for u in undo.iter().filter(|u| u.created) {
            if let Some(m) = self.files.get(&u.seq) {
                let p = m.path.clone();
                self.undurable_reuse.retain(|q| *q != p);
            }
        }
        Ok(())
    }

    fn ack_inner(
        &mut self,
        key: SensorKey,
        upto: u32,
        on_evict: &mut impl FnMut(RunInfo),
    ) -> Result<(), FileError> {
        self.enc.clear();
        push_ack_frame(&mut self.enc, key, upto);
        let u = self.write_frame(key.source, on_evict, true)?;
        if let Err(e) = self.verify_reachable(u.seq) {
            self.cut_back(u.seq, u.prev_len);
            return Err(e);
        }
        self.marks.insert(key, (upto, u.seq));
        Ok(())
    }

    /// Loads file `seq` into the read cache (verifying every frame).
    fn load(&mut self, seq: u64) -> Result<(), FileError> {
        let Some(m) = self.files.get(&seq) else {
            self.cache_seq = None;
            return Ok(());
        };
        let (len, seed) = (m.len, m.seed);
        if self.cache_seq == Some((seq, len)) {
            return Ok(());
        }
        let path = m.path.clone();
        self.cache_seq = None;
        let mut img = core::mem::take(&mut self.cache);
        let r = self.read_image(&path, &mut img);
        if let Err(e) = r {
            self.cache = img;
            return Err(e);
        }
        img.truncate(len as usize);
        let scan = scan_image(&img, seed);
        self.stats.bad_frames += scan.bad_frames;
        self.cache_frames = scan.frames;
        self.cache = img;
        self.cache_seq = Some((seq, len));
        Ok(())
    }

    fn read_inner(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        let mut start = (0u64, 0u32);
        for i in 0..CURSORS {
            let c = self.cursors[i];
            if c.used && c.key == key && c.next == seq {
                if self.files.contains_key(&c.file) {
                    start = (c.file, c.off);
                }
                self.cursors[i].used = false;
                break;
            }
        }
        let candidates: Vec<u64> = self
            .files
            .range(start.0..)
            .filter(|(_, m)| {
                m.source == key.source && m.keys.iter().any(|k| k.key == key && after(k.end, seq))
            })
            .map(|(&s, _)| s)
            .collect();
        for fseq in candidates {
            if let Err(e) = self.load(fseq) {
                if !gone(&e) {
                    return Err(e.into());
                }
                // Unlinked under the store (its directory removed?): its runs
                // go to the next `on_evict`, the read goes on after it.
                self.handle_vanished();
                continue;
            }
            let min_off = if fseq == start.0 { start.1 } else { 0 };
            for fi in 0..self.cache_frames.len() {
                let fr = self.cache_frames[fi];
                if fr.tag != TAG_BATCH || fr.off < min_off {
                    continue;
                }
                for (run, rec) in frame_runs(&self.cache, fr) {
                    if run.key != key || !(run.contains(seq) || after(run.first_seq, seq)) {
                        continue;
                    }
                    let size = run.kind.record_size();
                    if out.len() < size {
                        return Err(StorageError::BufferTooSmall);
                    }
                    let first = if run.contains(seq) {
                        seq
                    } else {
                        run.first_seq
                    };
                    let skip = first.wrapping_sub(run.first_seq) as usize;
                    let count = (run.count as usize - skip).min(out.len() / size);
                    let from = rec + skip * size;
                    out[..count * size].copy_from_slice(&self.cache[from..from + count * size]);
                    let slot = match self.cursors.iter().position(|c| !c.used) {
                        Some(i) => i,
                        None => {
                            self.victim = (self.victim + 1) % CURSORS;
                            self.victim
                        }
                    };
                    self.cursors[slot] = Cursor {
                        used: true,
                        key,
                        next: first.wrapping_add(count as u32),
                        file: fseq,
                        off: fr.off,
                    };
                    return Ok(Some(ReadOut { run, first, count }));
                }
            }
        }
        Ok(None)
    }

    fn recover_inner(&mut self, f: &mut impl FnMut(LogEntry)) -> Result<(), FileError> {
        let seqs: Vec<u64> = self.files.keys().copied().collect();
        let mut seen: HashMap<SensorKey, u32> = HashMap::new();
        for fseq in seqs {
            if let Err(e) = self.load(fseq) {
                // An unreadable file costs its own records only.
                let _ = e;
                continue;
            }
            for fi in 0..self.cache_frames.len() {
                let fr = self.cache_frames[fi];
                if fr.tag == TAG_ACK {
                    let b = &self.cache[fr.off as usize + FRAME_HDR..];
                    if let Some((key, upto)) = frame::parse_ack_body(b)
                        && Some(key.source) == self.files.get(&fseq).map(|m| m.source)
                    {
                        f(LogEntry::Ack { key, upto });
                    }
                    continue;
                }
                for (mut run, _) in frame_runs(&self.cache, fr) {
                    let end = run.end_seq();
                    if let Some(&s) = seen.get(&run.key) {
                        if !after(end, s) {
                            self.fstats.duplicate_runs += 1;
                            continue;
                        }
                        if after(s, run.first_seq) {
                            // Overlap with records already reported: trim.
                            let skip = s.wrapping_sub(run.first_seq);
                            self.fstats.duplicate_runs += 1;
                            run.first_seq = s;
                            run.count -= skip as u16;
                            if run.kind == super::RecordKind::Tsd {
                                run.meta.base_time = run
                                    .meta
                                    .base_time
                                    .wrapping_add(skip as u64 * run.meta.interval as u64);
                            }
                        }
                    }
                    seen.insert(run.key, end);
                    f(LogEntry::Run(run));
                }
            }
        }
        Ok(())
    }
}

impl<F: FileSystem> Storage for FileStorage<F> {
    /// Scans the directory, rewrites or quarantines damaged files (see the
    /// module docs) and builds the index. Unlike flash mount this may write
    /// (empty cut first writes, quarantine, delete `.tmp` leftovers).
    fn mount(&mut self) -> Result<(), StorageError> {
        self.do_mount().map_err(StorageError::from)
    }

    fn is_mounted(&self) -> bool {
        self.mounted
    }
    fn is_persistent(&self) -> bool {
        true
    }

    fn max_batch_bytes(&self) -> usize {
        self.largest_frame() - FRAME_HDR - CRC_LEN
    }

    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        batch: &B,
        mut on_evict: V,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let records = validate_batch(batch)?;
        if encoded_len(batch) > self.max_batch_bytes() {
            return Err(StorageError::TooLarge);
        }
        let mut got = Vec::new();
        let mut r = self.append_inner(batch, &mut |i| got.push(i));
        if r.is_err_and(|e| gone(&e)) && self.handle_vanished() {
            // Files or directories vanished under the store: what they held is
            // reported below; the batch goes into a new file, once.
            r = self.append_inner(batch, &mut |i| got.push(i));
        }
        self.deliver(got, &mut on_evict);
        r?;
        self.stats.batches += 1;
        self.stats.records += records;
        Ok(())
    }

    fn read(
        &mut self,
        key: SensorKey,
        seq: u32,
        out: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        self.check_mounted()?;
        if out.len() < 4 {
            return Err(StorageError::BufferTooSmall);
        }
        self.read_inner(key, seq, out)
    }

    fn ack<V: FnMut(RunInfo)>(
        &mut self,
        key: SensorKey,
        upto: u32,
        mut on_evict: V,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let mut got = Vec::new();
        let mut r = self.ack_inner(key, upto, &mut |i| got.push(i));
        if r.is_err_and(|e| gone(&e)) && self.handle_vanished() {
            r = self.ack_inner(key, upto, &mut |i| got.push(i));
        }
        self.deliver(got, &mut on_evict);
        r?;
        self.stats.acks += 1;
        Ok(())
    }

    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, mut on_evict: V) -> Result<bool, StorageError> {
        self.check_mounted()?;
        let mut got = Vec::new();
        let mut r = Ok(false);
        for _ in 0..2 {
            if self.files.len() < 2 {
                break;
            }
            r = self
                .evict_one(&mut |i| got.push(i), None)
                .and_then(|e| self.flush_dirs().map(|()| e));
            if !(r.is_err_and(|e| gone(&e)) && self.handle_vanished()) {
                break;
            }
        }
        self.deliver(got, &mut on_evict);
        Ok(r?)
    }

    fn recover<V: FnMut(LogEntry)>(&mut self, mut f: V) -> Result<(), StorageError> {
        self.check_mounted()?;
        Ok(self.recover_inner(&mut f)?)
    }

    fn stats(&self) -> StorageStats {
        let newest = self.files.iter().next_back();
        StorageStats {
            sectors: self.files.len() as u32,
            sector_size: self.cfg.file_size,
            head_seq: newest.map_or(0, |(&s, _)| s),
            head_free: newest.map_or(0, |(_, m)| {
                (self.cfg.file_size as u64).saturating_sub(m.len) as u32
            }),
            ..self.stats
        }
    }
}
