//! Reads (one cached file, cursors) and `recover` (every run and mark).

use super::*;

impl<F: FileSystem> FileStorage<F> {
    /// Loads file `seq` into the read cache (verifying every frame).
    pub(super) fn load(&mut self, seq: u64) -> Result<(), FileError> {
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

    pub(super) fn read_inner(
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

    pub(super) fn recover_inner(&mut self, f: &mut impl FnMut(LogEntry)) -> Result<(), FileError> {
        for (&key, &upto) in &self.reserved {
            f(LogEntry::Reserve { key, upto });
        }
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
                            if run.kind == crate::storage::RecordKind::Tsd {
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
