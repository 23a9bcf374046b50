//! Eviction and reuse: the oldest file goes first (never one the current
//! batch wrote to); at the cap it becomes the next new file; prefilled spares
//! give their room back first; the free-space guard.

use super::*;

impl<F: FileSystem> FileStorage<F> {
    /// Makes every reuse durable, before a directory `fsync` that must make
    /// all earlier evictions durable (see "Reusing evicted files" in the module
    /// docs): a reused file already written to is `fdatasync`ed (its new header
    /// and frames replace its previous life); one still waiting as a spare is
    /// truncated and `fdatasync`ed.
    pub(super) fn settle_reused(&mut self) -> Result<(), FileError> {
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
    pub(super) fn next_spare_size(&self, source: u8) -> u64 {
        self.spares
            .get(&source)
            .and_then(|v| v.last())
            .map_or(0, |s| s.1)
    }

    /// Whether a reused file waits as the next spare of `source` (a reused
    /// file is always the last spare, since spares are taken from the end and
    /// made ones go in front; it is not durable until its first frame is).
    pub(super) fn reused_waiting(&self, source: u8) -> bool {
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
    pub(super) fn eviction_candidate(&self) -> Option<u64> {
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
    pub(super) fn evict_one(
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
    pub(super) fn check_space(&mut self) -> Result<(), FileError> {
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

    /// Unlinks one prefilled spare (lowest source first, the one it would take
    /// last first), except the one the next file of `keep_for` starts in and a
    /// reused file waiting. `false` if there is none.
    pub(super) fn drop_prefilled(&mut self, keep_for: Option<u8>) -> bool {
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
    pub(super) fn drop_spare(&mut self, path: &Path, size: u64) {
        self.total -= size;
        if self.fs.remove_file(path).is_ok() {
            self.fstats.files_deleted += 1;
            if self.undurable_reuse.iter().any(|p| p == path) {
                // An evicted file: its unlink is durable before it counts.
                self.dir_due(path);
            }
        }
    }
}
