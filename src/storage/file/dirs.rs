//! Directories and files gone under the store: directories made durably,
//! directory `fsync`s due per call, and files or directories removed or
//! replaced while the store runs (detected, written off through `on_evict`).

use super::*;

impl<F: FileSystem> FileStorage<F> {
    pub(super) fn ensure_dir(&mut self, source: u8) -> Result<PathBuf, FileError> {
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
    pub(super) fn make_dir(&mut self, dir: &Path, sync_parent: bool) -> Result<(), FileError> {
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
    pub(super) fn dir_due(&mut self, p: &Path) {
        if let Some(d) = p.parent()
            && !self.dirs_due.iter().any(|q| q == d)
        {
            self.dirs_due.push(d.to_path_buf());
        }
    }

    /// `fsync`s every directory due (see `dirs_due`), once each.
    pub(super) fn flush_dirs(&mut self) -> Result<(), FileError> {
        while let Some(d) = self.dirs_due.last().cloned() {
            self.sync_dir(&d)?;
            self.dirs_due.pop();
        }
        Ok(())
    }

    /// Whether file `seq` is gone: its path names nothing, or another file
    /// than the handle held (replaced), or the handle's file has no name left.
    /// Layers that cannot tell (`Unsupported`) fall back to `open`.
    pub(super) fn is_gone(&mut self, seq: u64) -> bool {
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
    pub(super) fn verify_reachable(&mut self, seq: u64) -> Result<(), FileError> {
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
    pub(super) fn handle_vanished(&mut self) -> bool {
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
                        meta: crate::storage::RunMeta::default(),
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
    pub(super) fn deliver(&mut self, got: Vec<RunInfo>, on_evict: &mut impl FnMut(RunInfo)) {
        for r in got {
            on_evict(r);
        }
        for r in core::mem::take(&mut self.lost_runs) {
            on_evict(r);
        }
    }
}
