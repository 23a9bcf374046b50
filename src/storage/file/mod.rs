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
//!    One `fsync` per directory touched per frame, after its evictions and
//!    before the frame is written, so nothing is reported evicted that a
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

mod append;
mod dirs;
mod evict;
mod format;
mod fs;
pub(crate) mod inspect;
mod mount;
mod overlay;
mod read;
mod reserve;
mod spares;

#[cfg(feature = "config")]
pub mod config;

pub use fs::{DirEntry, FileId, FileSystem, FsFile, StdFile, StdFs};
pub use overlay::{OverlayFile, OverlayFs};

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

use format::*;

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

/// Result of checking a whole file image.
struct Scan {
    frames: Vec<FrameRef>,
    /// End of the last good frame.
    good_end: usize,
    /// A bad region was followed by a good frame.
    middle_damage: bool,
    bad_frames: u32,
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
    /// Sequence-number reservation per sensor (`reserve` module).
    reserved: BTreeMap<SensorKey, u32>,
    /// Bytes of the reservation file (counted in `total`).
    reserve_len: u64,
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
            reserved: BTreeMap::new(),
            reserve_len: 0,
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

    /// Replaces the reservation file (never evicted; see the `reserve` module).
    fn reserve<V: FnMut(RunInfo)>(
        &mut self,
        entries: &[(SensorKey, u32)],
        mut on_evict: V,
    ) -> Result<(), StorageError> {
        self.check_mounted()?;
        let mut got = Vec::new();
        let r = self.write_reservations(entries, &mut |i| got.push(i));
        self.deliver(got, &mut on_evict);
        Ok(r?)
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
