//! Mount: every file read and checked once, damaged files repaired or moved
//! to `quarantine/`, unfinished repairs finished (see the module docs of
//! [`super`], "Recovery at mount").

use super::*;

impl<F: FileSystem> FileStorage<F> {
    pub(super) fn quarantine(&mut self, path: &Path, tag: &str) -> Result<(), FileError> {
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
    pub(super) fn mount_file(
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
    pub(super) fn cut_file(&mut self, path: &Path, len: u64, was: u64) -> Result<(), FileError> {
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
    pub(super) fn write_new(&mut self, path: &Path, bytes: &[u8]) -> Result<F::File, FileError> {
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

    pub(super) fn do_mount(&mut self) -> Result<(), FileError> {
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
        self.load_reservations();
        self.mounted = true;
        Ok(())
    }
}
