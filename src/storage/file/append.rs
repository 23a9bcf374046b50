//! Appends and acknowledgement marks: a frame per source, new files started
//! in spares (made on the write path or taken from the helper thread), the
//! `fdatasync`s of a batch, and the rollback of a failed append.

use super::*;

impl<F: FileSystem> FileStorage<F> {
    /// Seals a file after a failure: no more appends to it.
    pub(super) fn seal(&mut self, seq: u64) {
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
    pub(super) fn write_frame(
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
        // Evictions and moves of this call durable before its frame is even
        // written, deferred sync or not: a cut after the write must not
        // bring an evicted file back beside the new frame (over the disk
        // limit), nor leave a moved file in both directories.
        self.flush_dirs()?;
        match target {
            Some(seq) => self.append_existing(seq, need, sync),
            None => self.create_file(source, sync),
        }
    }

    pub(super) fn append_existing(
        &mut self,
        seq: u64,
        need: u64,
        sync: bool,
    ) -> Result<Undo, FileError> {
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
    pub(super) fn cut_back(&mut self, seq: u64, len: u64) {
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
    pub(super) fn new_name_number(&mut self) -> u64 {
        while self.taken_names.remove(&self.next_seq) {
            self.next_seq += 1;
        }
        let n = self.next_seq;
        self.next_seq += 1;
        n
    }

    /// Pre-creates [`SPARES`] empty files in `dir` with one directory fsync.
    pub(super) fn make_spares(&mut self, source: u8, dir: &Path) -> Result<(), FileError> {
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
    pub(super) fn spares_ahead(&mut self, source: u8, dir: &Path) {
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
    pub(super) fn collect_ahead(&mut self, source: u8) {
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

    /// Starts a new file for `source` with the frame in `self.enc`: the first
    /// write into a spare (header and frame in one `pwrite`, then `fdatasync`).
    /// A reused spare is written over from its start; its stale bytes after the
    /// new frames never pass a frame check (the CRC covers the file's number).
    pub(super) fn create_file(&mut self, source: u8, sync: bool) -> Result<Undo, FileError> {
        // File numbers near the end of what mount accepts (only after a valid
        // header with a huge number, i.e. a forged one): refuse rather than
        // number a file that the next mount would take as damage.
        if self.next_seq > MAX_FILE_SEQ - 2 * SPARES as u64 {
            return Err(self.fail(FileError::NumbersExhausted));
        }
        // The directories first: `statvfs` of a root removed under the store fails.
        let mut dir = self.ensure_dir(source)?;
        self.check_space()?;
        self.collect_ahead(source);
        let mut retried = false;
        let (path, spare_size, mut f) = loop {
            if self.spares.get(&source).is_none_or(|v| v.is_empty()) {
                self.make_spares(source, &dir)?;
            }
            let (path, spare_size) = self
                .spares
                .get_mut(&source)
                .and_then(|v| v.pop())
                .unwrap_or_else(|| unreachable!());
            match self.fs.open(&path) {
                Ok(f) => break (path, spare_size, f),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !retried => {
                    // The spare went with its directory, removed or replaced
                    // under the store (the helper thread may have handed it
                    // over after the loss was handled): forget it, check the
                    // rest, make the directory again and take a new spare.
                    self.total = self.total.saturating_sub(spare_size);
                    self.handle_vanished();
                    dir = self.ensure_dir(source)?;
                    retried = true;
                }
                Err(e) => {
                    let err = self.fail(FileError::io(FileOp::Open, &e));
                    self.drop_spare(&path, spare_size);
                    return Err(err);
                }
            }
        };
        self.spares_ahead(source, &dir);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut bytes = Vec::with_capacity(FILE_HEADER + self.enc.len());
        bytes.extend_from_slice(&file_header(seq, source));
        bytes.extend_from_slice(&self.enc);
        set_frame_crc(&mut bytes[FILE_HEADER..], seq);
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
    pub(super) fn rollback(&mut self, undo: Vec<Undo>) {
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
    pub(super) fn encode_batch<B: Batch + ?Sized>(&mut self, batch: &B, source: u8) {
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

    pub(super) fn append_inner<B: Batch + ?Sized>(
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
    pub(super) fn sync_all(&mut self, undo: &[Undo]) -> Result<(), FileError> {
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

    pub(super) fn ack_inner(
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
}
