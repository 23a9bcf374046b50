//! [`OverlayFs`]: the real filesystem seen through an in-memory copy-on-write
//! overlay. Reads go to the files on disk; every change (a file created,
//! written, truncated, renamed or removed, a directory made) is kept in memory
//! and seen by later calls through the same overlay, never by the disk.
//!
//! What it is for: running the library's own mount of a
//! [`FileStorage`](super::FileStorage), repairs included (a file damaged
//! between good frames rewritten and the original moved to `quarantine/`, a
//! cut first write emptied, a leftover `.tmp` removed or renamed), over a spool
//! directory that must not change, e.g. one pulled from a device for
//! `spool-inspect`. The store then serves exactly what it would after a real
//! mount of the same directory, and the directory is left as it was.

use super::{DirEntry, FileId, FileSystem, FsFile, StdFs};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Device number of the identities ([`FileId`]) of files and directories the
/// overlay holds (no real device has it).
const OVERLAY_DEV: u64 = u64::MAX;

/// The real filesystem under an in-memory copy-on-write overlay: files on
/// disk are opened read-only and copied into memory the first time they are
/// written or truncated (only the bytes kept); files created, renamed, removed
/// and directories made exist in the overlay only, and later calls see them.
/// `fdatasync` and directory `fsync` do nothing. Clones share one overlay.
/// Nothing on disk is ever opened for writing, created, renamed, removed or
/// truncated through it.
///
/// A [`FileStorage`](super::FileStorage) over it mounts a spool directory
/// with the library's own mount, repairs included (a file damaged between
/// good frames rewritten and the original moved to `quarantine/`, a cut first
/// write emptied, a leftover `.tmp` removed or put in place), in memory; it
/// then recovers and reads exactly what it would after a real mount of the
/// same directory, and the directory stays as it was. This is how
/// `spool-inspect` reads a spool directory pulled from a device.
///
/// Identities ([`FileSystem::id`], [`FsFile::id`]) of files are the overlay's
/// own (one per file, stable across renames, with the count of names that
/// reach it), so the store's checks for files gone under it work as on disk.
#[derive(Clone, Debug, Default)]
pub struct OverlayFs(Arc<Mutex<Overlay>>);

/// A file opened through [`OverlayFs`].
#[derive(Debug)]
pub struct OverlayFile {
    overlay: Arc<Mutex<Overlay>>,
    ino: usize,
    /// The file on disk it was opened as, read-only (while not copied up).
    base: Option<File>,
}

/// The changes an [`OverlayFs`] holds.
#[derive(Debug, Default)]
struct Overlay {
    /// Names the overlay decides: `Some(inode)` a file, `None` removed (a
    /// file on disk that is gone in the overlay). Every file on disk that was
    /// looked up is here, so it keeps one identity.
    names: BTreeMap<PathBuf, Option<usize>>,
    /// Directories made in the overlay (not on disk), with their identity.
    dirs: BTreeMap<PathBuf, u64>,
    /// Files, by identity.
    inodes: Vec<Inode>,
}

#[derive(Debug)]
struct Inode {
    /// The file on disk it started as (`None`: created in the overlay).
    base: Option<PathBuf>,
    /// Its bytes once changed (copied up), from the start for a new file.
    data: Option<Vec<u8>>,
    /// Names that reach it.
    links: u64,
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

fn lost() -> io::Error {
    io::Error::other("overlay: unknown file")
}

impl Overlay {
    fn inode(&mut self, ino: usize) -> io::Result<&mut Inode> {
        self.inodes.get_mut(ino).ok_or_else(lost)
    }

    fn file_id(&self, ino: usize) -> FileId {
        FileId {
            dev: OVERLAY_DEV,
            ino: ino as u64,
            links: self.inodes.get(ino).map_or(0, |i| i.links),
        }
    }

    /// Points `path` at `to` (a file, or `None`: removed).
    fn set_name(&mut self, path: &Path, to: Option<usize>) {
        if let Some(i) = to
            && let Some(n) = self.inodes.get_mut(i)
        {
            n.links += 1;
        }
        if let Some(Some(old)) = self.names.insert(path.to_path_buf(), to)
            && let Some(n) = self.inodes.get_mut(old)
        {
            n.links = n.links.saturating_sub(1);
        }
    }

    fn new_inode(&mut self, base: Option<PathBuf>, data: Option<Vec<u8>>) -> usize {
        self.inodes.push(Inode {
            base,
            data,
            links: 0,
        });
        self.inodes.len() - 1
    }

    /// Whether `path` is a directory (made in the overlay, or on disk).
    fn is_dir(&self, path: &Path) -> bool {
        if self.dirs.contains_key(path) {
            return true;
        }
        // A name the overlay decides is a file (or nothing), not a directory.
        !self.names.contains_key(path) && fs::metadata(path).is_ok_and(|m| m.is_dir())
    }

    /// The file `path` names: `NotFound` if nothing, an error for a directory.
    fn resolve(&mut self, path: &Path) -> io::Result<usize> {
        if let Some(&e) = self.names.get(path) {
            return e.ok_or_else(not_found);
        }
        if self.dirs.contains_key(path) {
            return Err(io::Error::other("is a directory"));
        }
        let m = fs::metadata(path)?;
        if !m.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let ino = self.new_inode(Some(path.to_path_buf()), None);
        self.set_name(path, Some(ino));
        Ok(ino)
    }

    /// Whether `path` names anything (file or directory).
    fn exists(&mut self, path: &Path) -> bool {
        self.is_dir(path) || self.resolve(path).is_ok()
    }

    /// The parent of `path` must be a directory (`NotFound` if not).
    fn parent_dir(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() && !self.is_dir(p) => Err(not_found()),
            _ => Ok(()),
        }
    }

    /// Copies file `ino` into memory (its first `limit` bytes at most) if it
    /// is still the file on disk.
    fn copy_up(&mut self, ino: usize, base: Option<&File>, limit: u64) -> io::Result<&mut Vec<u8>> {
        let n = self.inode(ino)?;
        if n.data.is_none() {
            let opened;
            let f = match base {
                Some(f) => f,
                None => {
                    let p = n.base.as_deref().ok_or_else(lost)?;
                    opened = File::open(p)?;
                    &opened
                }
            };
            let len = f.metadata()?.len().min(limit);
            let mut d = vec![0u8; usize::try_from(len).map_err(|_| lost())?];
            f.read_exact_at(&mut d, 0)?;
            n.data = Some(d);
        }
        n.data.as_mut().ok_or_else(lost)
    }
}

impl OverlayFs {
    /// An empty overlay over the real filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Overlay> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OverlayFile {
    fn lock(&self) -> MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FsFile for OverlayFile {
    fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let mut o = self.lock();
        match &o.inode(self.ino)?.data {
            Some(d) => {
                let src = usize::try_from(off)
                    .ok()
                    .and_then(|s| d.get(s..s.checked_add(buf.len())?))
                    .ok_or(io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            None => self.base.as_ref().ok_or_else(lost)?.read_exact_at(buf, off),
        }
    }

    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut o = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let d = o.copy_up(self.ino, self.base.as_ref(), u64::MAX)?;
        let start = usize::try_from(off).map_err(|_| lost())?;
        let end = start.checked_add(buf.len()).ok_or_else(lost)?;
        if d.len() < end {
            d.resize(end, 0);
        }
        d.get_mut(start..end).ok_or_else(lost)?.copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut o = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        let d = o.copy_up(self.ino, self.base.as_ref(), len)?;
        d.resize(usize::try_from(len).map_err(|_| lost())?, 0);
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        let mut o = self.lock();
        match &o.inode(self.ino)?.data {
            Some(d) => Ok(d.len() as u64),
            None => Ok(self.base.as_ref().ok_or_else(lost)?.metadata()?.len()),
        }
    }

    fn id(&mut self) -> io::Result<FileId> {
        Ok(self.lock().file_id(self.ino))
    }
}

impl FileSystem for OverlayFs {
    type File = OverlayFile;

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let mut o = self.lock();
        let mut made = Vec::new();
        for a in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            if o.is_dir(a) {
                break;
            }
            if o.resolve(a).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            made.push(a.to_path_buf());
        }
        for d in made.into_iter().rev() {
            let id = (1 << 63) | o.dirs.len() as u64;
            o.dirs.insert(d, id);
        }
        Ok(())
    }

    fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let o = self.lock();
        if !o.is_dir(path) {
            return Err(not_found());
        }
        let mut seen = BTreeSet::new();
        let mut v = Vec::new();
        if !o.dirs.contains_key(path) {
            for e in StdFs.list_dir(path)? {
                let full = path.join(&e.name);
                // Decided by the overlay below.
                if !o.names.contains_key(&full) && seen.insert(e.name.clone()) {
                    v.push(e);
                }
            }
        }
        let here = |p: &Path| p.parent() == Some(path);
        for (p, e) in &o.names {
            if e.is_some()
                && here(p)
                && let Some(name) = p.file_name().and_then(|n| n.to_str())
                && seen.insert(name.to_string())
            {
                v.push(DirEntry {
                    name: name.to_string(),
                    is_dir: false,
                });
            }
        }
        for p in o.dirs.keys() {
            if here(p)
                && let Some(name) = p.file_name().and_then(|n| n.to_str())
                && seen.insert(name.to_string())
            {
                v.push(DirEntry {
                    name: name.to_string(),
                    is_dir: true,
                });
            }
        }
        Ok(v)
    }

    fn open(&mut self, path: &Path) -> io::Result<OverlayFile> {
        let mut o = self.lock();
        let ino = o.resolve(path)?;
        let n = o.inode(ino)?;
        let base = match (&n.data, &n.base) {
            (None, Some(p)) => Some(File::open(p)?),
            _ => None,
        };
        Ok(OverlayFile {
            overlay: self.0.clone(),
            ino,
            base,
        })
    }

    fn create_new(&mut self, path: &Path) -> io::Result<OverlayFile> {
        let mut o = self.lock();
        if o.exists(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        o.parent_dir(path)?;
        let ino = o.new_inode(None, Some(Vec::new()));
        o.set_name(path, Some(ino));
        Ok(OverlayFile {
            overlay: self.0.clone(),
            ino,
            base: None,
        })
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let mut o = self.lock();
        o.resolve(path)?;
        o.set_name(path, None);
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut o = self.lock();
        let ino = o.resolve(from)?;
        o.parent_dir(to)?;
        if o.is_dir(to) {
            return Err(io::Error::other("is a directory"));
        }
        if from != to {
            o.set_name(to, Some(ino));
            o.set_name(from, None);
        }
        Ok(())
    }

    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        if self.lock().is_dir(path) {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    fn available_bytes(&mut self, path: &Path) -> io::Result<u64> {
        // The filesystem of the nearest directory on disk.
        let on_disk = path
            .ancestors()
            .find(|a| !a.as_os_str().is_empty() && fs::metadata(a).is_ok())
            .unwrap_or(Path::new("."));
        StdFs.available_bytes(on_disk)
    }

    fn id(&mut self, path: &Path) -> io::Result<FileId> {
        let mut o = self.lock();
        if let Some(&d) = o.dirs.get(path) {
            return Ok(FileId {
                dev: OVERLAY_DEV,
                ino: d,
                links: 1,
            });
        }
        if o.is_dir(path) {
            return StdFs.id(path);
        }
        let ino = o.resolve(path)?;
        Ok(o.file_id(ino))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("overlay-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("d")).unwrap();
        fs::write(p.join("d/a"), b"hello world").unwrap();
        p
    }

    fn names(fs: &mut OverlayFs, p: &Path) -> Vec<(String, bool)> {
        let mut v: Vec<_> = fs
            .list_dir(p)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        v.sort();
        v
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system")]
    fn changes_stay_in_memory() {
        let root = tmp("mem");
        let d = root.join("d");
        let mut o = OverlayFs::new();
        // Write, truncate, rename, create, remove, mkdir: seen through the overlay.
        let mut f = o.open(&d.join("a")).unwrap();
        let id = f.id().unwrap();
        f.write_all_at(b"J", 0).unwrap();
        f.set_len(5).unwrap();
        let mut b = [0u8; 5];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"Jello");
        assert_eq!(f.size().unwrap(), 5);
        o.create_dir_all(&root.join("q/r")).unwrap();
        o.rename(&d.join("a"), &root.join("q/r/a")).unwrap();
        assert!(
            o.id(&d.join("a"))
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        );
        assert!(o.id(&root.join("q/r/a")).unwrap().same(&id));
        let mut n = o.create_new(&d.join("b")).unwrap();
        n.write_all_at(b"xy", 3).unwrap();
        let mut c = o.clone().open(&d.join("b")).unwrap();
        let mut b = [9u8; 5];
        c.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, [0, 0, 0, b'x', b'y']);
        assert!(o.create_new(&d.join("b")).is_err());
        assert!(o.create_new(&root.join("none/b")).is_err());
        assert_eq!(names(&mut o, &d), [("b".to_string(), false)]);
        assert_eq!(
            names(&mut o, &root),
            [("d".to_string(), true), ("q".to_string(), true)]
        );
        assert_eq!(names(&mut o, &root.join("q/r")), [("a".to_string(), false)]);
        o.remove_file(&d.join("b")).unwrap();
        assert!(o.remove_file(&d.join("b")).is_err());
        assert!(names(&mut o, &d).is_empty());
        assert_eq!(c.id().unwrap().links, 0);
        // The disk: as it was.
        assert_eq!(fs::read(d.join("a")).unwrap(), b"hello world");
        assert!(!d.join("b").exists() && !root.join("q").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
