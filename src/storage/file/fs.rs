//! The filesystem layer [`FileStorage`](super::FileStorage) goes through.
//!
//! Every filesystem call of the file storage goes through [`FileSystem`] and
//! [`FsFile`], so tests can wrap [`StdFs`] and inject faults (`ENOSPC` or `EIO`
//! on a write, a failing `fdatasync`, a failing `rename`, a short write, a full
//! filesystem). The trait is deliberately small: positioned reads and writes,
//! `fdatasync`, truncation, directory listing, rename, unlink, directory fsync,
//! `statvfs`, and `stat`/`fstat` identities ([`FileId`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// File name (not the full path). Names that are not UTF-8 are skipped.
    pub name: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
}

/// Identity of a file or directory (`stat`): device and inode number, and
/// the number of names it has (0: unlinked, reachable only through handles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Device (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
    /// Hard links (`st_nlink`).
    pub links: u64,
}

impl FileId {
    /// Whether both name the same file (device and inode).
    pub fn same(&self, other: &FileId) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// An open regular file. `Send`, because the files of a batch that spans
/// several sources are `fdatasync`ed concurrently.
pub trait FsFile: Send {
    /// Reads exactly `buf.len()` bytes at `off` (`pread`).
    fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Writes all of `buf` at `off` (`pwrite`).
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()>;
    /// Makes the file's data and the metadata needed to read it durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates or extends the file (`ftruncate`).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Current length of the file (`fstat`).
    fn size(&mut self) -> io::Result<u64>;
    /// Identity of the open file (`fstat`). The store compares it with what
    /// the file's path names before it reports a write durable, so a file
    /// unlinked or replaced under it (spool directory removed while the store
    /// runs) is detected. The default says `Unsupported`: no check is made.
    fn id(&mut self) -> io::Result<FileId> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The filesystem operations the file storage uses.
///
/// `Clone + Send + 'static` because the helper thread that makes spare files
/// ahead ([`FileConfig::background_spares`](super::FileConfig::background_spares))
/// works on its own clone; a fault-injecting layer shares its plan between
/// clones (e.g. behind an `Arc<Mutex<_>>`).
pub trait FileSystem: Clone + Send + 'static {
    /// Open file type.
    type File: FsFile;
    /// Creates a directory and its parents (`mkdir -p`).
    fn create_dir_all(&mut self, path: &Path) -> io::Result<()>;
    /// Lists a directory.
    fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Opens an existing file for reading and writing.
    fn open(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Creates a new file for reading and writing; fails if it exists (`O_EXCL`).
    fn create_new(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Removes a file (`unlink`).
    fn remove_file(&mut self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists (`rename`).
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (`fsync` on the directory).
    fn sync_dir(&mut self, path: &Path) -> io::Result<()>;
    /// Bytes an unprivileged writer may still allocate on the filesystem that
    /// holds `path` (`statvfs`: `f_bavail * f_frsize`).
    fn available_bytes(&mut self, path: &Path) -> io::Result<u64>;
    /// Identity of what `path` names (`stat`); `NotFound` if nothing. The
    /// default says `Unsupported`: the store then cannot tell a removed file
    /// or directory from a present one before it reports a write durable.
    fn id(&mut self, path: &Path) -> io::Result<FileId> {
        let _ = path;
        Err(io::ErrorKind::Unsupported.into())
    }
}

fn id_of(m: &fs::Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
        links: m.nlink(),
    }
}

/// The real filesystem through `std::fs`, plus `statvfs` from `rustix`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// A file of [`StdFs`].
#[derive(Debug)]
pub struct StdFile(File);

impl FsFile for StdFile {
    fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, off)
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, off)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn id(&mut self) -> io::Result<FileId> {
        Ok(id_of(&self.0.metadata()?))
    }
}

impl FileSystem for StdFs {
    type File = StdFile;
    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut v = Vec::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            v.push(DirEntry {
                name,
                is_dir: e.file_type()?.is_dir(),
            });
        }
        Ok(v)
    }
    fn open(&mut self, path: &Path) -> io::Result<StdFile> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(StdFile)
    }
    fn create_new(&mut self, path: &Path) -> io::Result<StdFile> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map(StdFile)
    }
    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn available_bytes(&mut self, path: &Path) -> io::Result<u64> {
        let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }
    fn id(&mut self, path: &Path) -> io::Result<FileId> {
        Ok(id_of(&fs::metadata(path)?))
    }
}
