//! [`MemFs`]: the crash model of [`FaultFs`](super::FaultFs) over an
//! in-memory tree, so a sweep can take a crash image before every operation
//! and mount each one (hundreds of thousands of cut points in a CI stage):
//! file data durable only after `fdatasync` (else lost whole, torn at
//! 512-byte sectors, or kept); a creation, `mkdir`, rename or unlink durable
//! only after an `fsync` of its directory, each undone or not independently
//! at a crash, renames whole ([`DirModel::Atomic`], journaling) or by halves
//! ([`DirModel::Independent`], ext2 / ext4 without a journal).

use super::{DirModel, Rng, torn_mix};
use sensor_spool::storage::file::{DirEntry, FileId, FileSystem, FsFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file's contents; `synced`: its contents at its last `fdatasync` while it
/// has changed since.
#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Option<Vec<u8>>,
    open: u32,
}

/// A directory-entry change not yet made durable (see [`super::MetaOp`]).
#[derive(Clone, Debug)]
enum Meta {
    Create(PathBuf),
    Mkdir(PathBuf),
    Unlink(PathBuf, Vec<u8>, Option<Vec<u8>>),
    Rename {
        from: PathBuf,
        to: PathBuf,
        link: bool,
        unlink: bool,
    },
}

/// Planned failure of [`MemFs`]: from operation `from` on (counted like
/// [`MemState::ops`]), every operation of the kinds chosen fails with `errno`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemFault {
    pub from: u64,
    pub errno: i32,
    pub writes: bool,
    pub syncs: bool,
    pub creates: bool,
}

/// The tree: directories, names, inodes, and what a crash may undo.
#[derive(Debug, Default)]
pub struct MemState {
    dirs: BTreeMap<PathBuf, u64>,
    names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    pub dir_model: DirModel,
    meta: Vec<Meta>,
    /// Operations so far (writes, truncations, syncs, creations, `mkdir`s,
    /// renames, unlinks, directory syncs).
    pub ops: u64,
    /// While set, a crash image is taken before every operation: (seed, images
    /// taken as (operation index, tree a crash then would leave)).
    pub imaging: Option<(u64, Vec<(u64, MemState)>)>,
    /// `statvfs` answer.
    pub available: u64,
    pub fault: Option<MemFault>,
}

impl MemState {
    fn new(dir_model: DirModel) -> Self {
        let mut s = MemState {
            dir_model,
            next_ino: 2,
            available: 1 << 40,
            ..Default::default()
        };
        s.dirs.insert(PathBuf::from("/"), 1);
        s
    }

    fn ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    fn trace(&self, what: &str, p: &dyn std::fmt::Debug) {
        if std::env::var_os("MEMFS_TRACE").is_some() && self.imaging.is_some() {
            eprintln!("op {} {what} {p:?}", self.ops);
        }
    }

    fn tick(&mut self) {
        if let Some((seed, mut imgs)) = self.imaging.take() {
            let mut rng = Rng(seed ^ (self.ops + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            imgs.push((self.ops, self.crash_image(&mut rng)));
            self.imaging = Some((seed, imgs));
        }
        self.ops += 1;
    }

    fn failing(&self, pick: fn(&MemFault) -> bool) -> io::Result<()> {
        match self.fault {
            Some(f) if self.ops > f.from && pick(&f) => Err(io::Error::from_raw_os_error(f.errno)),
            _ => Ok(()),
        }
    }

    fn parent_is_dir(&self, p: &Path) -> bool {
        p.parent().is_some_and(|d| self.dirs.contains_key(d))
    }

    fn gc(&mut self, ino: u64) {
        let named = self.names.values().any(|&i| i == ino);
        if !named && self.inodes.get(&ino).is_some_and(|i| i.open == 0) {
            self.inodes.remove(&ino);
        }
    }

    /// What a crash now would leave (a fresh tree, nothing pending): every
    /// changed file old, new or torn; of the directory changes not yet
    /// durable a random subset undone (POSIX promises no order).
    pub fn crash_image(&self, rng: &mut Rng) -> MemState {
        let mut dirs: BTreeSet<PathBuf> = self.dirs.keys().cloned().collect();
        let mut files: BTreeMap<PathBuf, Vec<u8>> = self
            .names
            .iter()
            .map(|(p, i)| {
                let n = &self.inodes[i];
                let d = match &n.synced {
                    Some(old) => torn_mix(old, &n.data, rng),
                    None => n.data.clone(),
                };
                (p.clone(), d)
            })
            .collect();
        let parent_ok =
            |dirs: &BTreeSet<PathBuf>, p: &Path| p.parent().is_some_and(|d| dirs.contains(d));
        for op in self.meta.iter().rev() {
            match op {
                Meta::Create(p) => {
                    if rng.below(2) == 0 && files.contains_key(p) {
                        files.remove(p);
                    }
                }
                Meta::Mkdir(p) => {
                    if rng.below(2) == 0 && dirs.contains(p) {
                        dirs.retain(|d| !d.starts_with(p));
                        files.retain(|f, _| !f.starts_with(p));
                    }
                }
                Meta::Unlink(p, bytes, old) => {
                    if rng.below(2) == 0 && !files.contains_key(p) && parent_ok(&dirs, p) {
                        let b = match old {
                            Some(old) => torn_mix(old, bytes, rng),
                            None => bytes.clone(),
                        };
                        files.insert(p.clone(), b);
                    }
                }
                Meta::Rename {
                    from,
                    to,
                    link,
                    unlink,
                } => {
                    if !files.contains_key(to)
                        || files.contains_key(from)
                        || !parent_ok(&dirs, from)
                    {
                        continue;
                    }
                    let (keep_link, keep_unlink) = match self.dir_model {
                        DirModel::Atomic => {
                            let keep = *link || rng.below(2) == 0;
                            (keep, keep)
                        }
                        DirModel::Independent => {
                            (*link || rng.below(2) == 0, *unlink || rng.below(2) == 0)
                        }
                    };
                    match (keep_link, keep_unlink) {
                        (true, true) => {}
                        (false, false) => {
                            let d = files.remove(to).unwrap();
                            files.insert(from.clone(), d);
                        }
                        (true, false) => {
                            let d = files[to].clone();
                            files.insert(from.clone(), d);
                        }
                        (false, true) => {
                            files.remove(to);
                        }
                    }
                }
            }
        }
        let mut s = MemState::new(self.dir_model);
        s.available = self.available;
        for d in dirs {
            let i = s.ino();
            s.dirs.insert(d, i);
        }
        for (p, data) in files {
            let i = s.ino();
            s.names.insert(p, i);
            s.inodes.insert(
                i,
                Inode {
                    data,
                    ..Default::default()
                },
            );
        }
        s
    }

    fn dir_synced(&mut self, dir: &Path) {
        let atomic = self.dir_model == DirModel::Atomic;
        self.meta.retain_mut(|op| match op {
            Meta::Create(p) | Meta::Mkdir(p) | Meta::Unlink(p, _, _) => p.parent() != Some(dir),
            Meta::Rename {
                from,
                to,
                link,
                unlink,
            } => {
                if to.parent() == Some(dir) {
                    *link = true;
                    if atomic {
                        *unlink = true;
                    }
                }
                if !atomic && from.parent() == Some(dir) {
                    *unlink = true;
                }
                !(*link && *unlink)
            }
        });
    }

    /// Total size of the files under `dir` whose path does not contain `skip`.
    pub fn bytes_under(&self, dir: &Path, skip: &str) -> u64 {
        self.names
            .iter()
            .filter(|(p, _)| p.starts_with(dir) && !p.to_string_lossy().contains(skip))
            .map(|(_, i)| self.inodes[i].data.len() as u64)
            .sum()
    }

    /// Removes a directory and everything under it, durably (a fault outside
    /// the library: `rm -rf`).
    pub fn rm_rf(&mut self, dir: &Path) {
        self.dirs.retain(|d, _| !d.starts_with(dir));
        let gone: Vec<(PathBuf, u64)> = self
            .names
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in gone {
            self.names.remove(&p);
            self.gc(i);
        }
    }

    /// Makes a directory (durably; a fault outside the library).
    pub fn mkdir(&mut self, dir: &Path) {
        let i = self.ino();
        self.dirs.insert(dir.to_path_buf(), i);
    }

    /// File names under `dir` (recursively) and their contents.
    pub fn files_under(&self, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        self.names
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, i)| (p.clone(), self.inodes[i].data.clone()))
            .collect()
    }

    /// Replaces a file's contents durably (a fault outside the library).
    pub fn put(&mut self, path: &Path, data: Vec<u8>) {
        let i = self.ino();
        if let Some(old) = self.names.insert(path.to_path_buf(), i) {
            self.gc(old);
        }
        self.inodes.insert(
            i,
            Inode {
                data,
                ..Default::default()
            },
        );
    }
}

/// The in-memory filesystem; clones share the tree.
#[derive(Clone, Debug)]
pub struct MemFs(pub Arc<Mutex<MemState>>);

impl MemFs {
    pub fn new(dir_model: DirModel) -> Self {
        MemFs(Arc::new(Mutex::new(MemState::new(dir_model))))
    }
    /// A filesystem holding `state` (a crash image).
    pub fn from_state(state: MemState) -> Self {
        MemFs(Arc::new(Mutex::new(state)))
    }
    pub fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.0.lock().unwrap()
    }
    pub fn start_imaging(&self, seed: u64) {
        self.state().imaging = Some((seed, Vec::new()));
    }
    /// The crash images taken since the last call (imaging goes on).
    pub fn take_images(&self) -> Vec<(u64, MemState)> {
        match &mut self.state().imaging {
            Some((_, v)) => std::mem::take(v),
            None => Vec::new(),
        }
    }
    pub fn stop_imaging(&self) -> Vec<(u64, MemState)> {
        self.state().imaging.take().map(|i| i.1).unwrap_or_default()
    }
    pub fn ops(&self) -> u64 {
        self.state().ops
    }
}

/// An open file of [`MemFs`].
pub struct MemFile {
    fs: Arc<Mutex<MemState>>,
    ino: u64,
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut s = self.fs.lock().unwrap();
        if let Some(i) = s.inodes.get_mut(&self.ino) {
            i.open -= 1;
        }
        s.gc(self.ino);
    }
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl FsFile for MemFile {
    fn read_exact_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let s = self.fs.lock().unwrap();
        let d = &s.inodes[&self.ino].data;
        let off = off as usize;
        if off + buf.len() > d.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&d[off..off + buf.len()]);
        Ok(())
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut s = self.fs.lock().unwrap();
        s.trace("write", &(self.ino, off, buf.len()));
        s.tick();
        s.failing(|f| f.writes)?;
        let i = s.inodes.get_mut(&self.ino).unwrap();
        if i.synced.is_none() {
            i.synced = Some(i.data.clone());
        }
        let end = off as usize + buf.len();
        if i.data.len() < end {
            i.data.resize(end, 0);
        }
        i.data[off as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.fs.lock().unwrap();
        s.trace("fdatasync", &self.ino);
        s.tick();
        s.failing(|f| f.syncs)?;
        s.inodes.get_mut(&self.ino).unwrap().synced = None;
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock().unwrap();
        s.trace("set_len", &(self.ino, len));
        s.tick();
        s.failing(|f| f.writes)?;
        let i = s.inodes.get_mut(&self.ino).unwrap();
        if i.synced.is_none() {
            i.synced = Some(i.data.clone());
        }
        i.data.resize(len as usize, 0);
        Ok(())
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.fs.lock().unwrap().inodes[&self.ino].data.len() as u64)
    }
    fn id(&mut self) -> io::Result<FileId> {
        let s = self.fs.lock().unwrap();
        let links = s.names.values().filter(|&&i| i == self.ino).count() as u64;
        Ok(FileId {
            dev: 1,
            ino: self.ino,
            links,
        })
    }
}

impl FileSystem for MemFs {
    type File = MemFile;
    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !s.dirs.contains_key(*a))
            .map(Path::to_path_buf)
            .collect();
        for d in missing.into_iter().rev() {
            s.tick();
            s.failing(|f| f.creates)?;
            let i = s.ino();
            s.dirs.insert(d.clone(), i);
            s.meta.push(Meta::Mkdir(d));
        }
        Ok(())
    }
    fn list_dir(&mut self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.state();
        if !s.dirs.contains_key(path) {
            return Err(not_found());
        }
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        let mut v: Vec<DirEntry> = s
            .dirs
            .keys()
            .filter(|d| d.parent() == Some(path))
            .map(|d| DirEntry {
                name: name(d),
                is_dir: true,
            })
            .collect();
        v.extend(
            s.names
                .keys()
                .filter(|p| p.parent() == Some(path))
                .map(|p| DirEntry {
                    name: name(p),
                    is_dir: false,
                }),
        );
        Ok(v)
    }
    fn open(&mut self, path: &Path) -> io::Result<MemFile> {
        let mut s = self.state();
        let ino = *s.names.get(path).ok_or_else(not_found)?;
        s.trace("open", &(path, ino));
        s.inodes.get_mut(&ino).unwrap().open += 1;
        Ok(MemFile {
            fs: self.0.clone(),
            ino,
        })
    }
    fn create_new(&mut self, path: &Path) -> io::Result<MemFile> {
        let mut s = self.state();
        s.trace("create", &path);
        s.tick();
        s.failing(|f| f.creates)?;
        if !s.parent_is_dir(path) {
            return Err(not_found());
        }
        if s.names.contains_key(path) || s.dirs.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = s.ino();
        s.names.insert(path.to_path_buf(), ino);
        s.inodes.insert(
            ino,
            Inode {
                open: 1,
                ..Default::default()
            },
        );
        s.meta.push(Meta::Create(path.to_path_buf()));
        Ok(MemFile {
            fs: self.0.clone(),
            ino,
        })
    }
    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.trace("unlink", &path);
        s.tick();
        let ino = s.names.remove(path).ok_or_else(not_found)?;
        let i = s.inodes.get_mut(&ino).unwrap();
        let bytes = i.data.clone();
        let old = i.synced.take();
        s.meta.push(Meta::Unlink(path.to_path_buf(), bytes, old));
        s.gc(ino);
        Ok(())
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.trace("rename", &(from, to));
        s.tick();
        if !s.parent_is_dir(to) {
            return Err(not_found());
        }
        let ino = s.names.remove(from).ok_or_else(not_found)?;
        if let Some(old) = s.names.insert(to.to_path_buf(), ino) {
            s.gc(old);
        }
        s.meta.push(Meta::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            link: false,
            unlink: false,
        });
        Ok(())
    }
    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.trace("fsync dir", &path);
        s.tick();
        s.failing(|f| f.syncs)?;
        if !s.dirs.contains_key(path) {
            return Err(not_found());
        }
        s.dir_synced(path);
        Ok(())
    }
    fn available_bytes(&mut self, path: &Path) -> io::Result<u64> {
        let s = self.state();
        if !s.dirs.contains_key(path) {
            return Err(not_found());
        }
        Ok(s.available)
    }
    fn id(&mut self, path: &Path) -> io::Result<FileId> {
        let s = self.state();
        if let Some(&ino) = s.dirs.get(path) {
            return Ok(FileId {
                dev: 1,
                ino,
                links: 1,
            });
        }
        let ino = *s.names.get(path).ok_or_else(not_found)?;
        Ok(FileId {
            dev: 1,
            ino,
            links: 1,
        })
    }
}
