//! Sequence-number reservations of the file store: one small file,
//! `<root>/reserve`, replaced whole (written to `reserve.tmp`, `fdatasync`ed,
//! renamed over, the root `fsync`ed), so a power cut leaves the old or the new
//! set, never a torn one. It is never evicted: the reservations outlive the
//! data files (see [`Storage::reserve`](crate::storage::Storage::reserve)).
//!
//! Content: one reservation frame (the flash format's tag `0xA5`, 12-byte
//! entries, CRC-32C) holding every sensor's reservation.

use super::{FileError, FileOp, FileStorage, FileSystem, FsFile};
use crate::storage::SensorKey;
use crate::storage::frame::{
    self, CRC_LEN, CRC32, FRAME_HDR, Header, MAX_FRAME, RESERVE_ENTRY, TAG_RESERVE,
};

/// Name of the reservation file in the root.
pub(super) const RESERVE_FILE: &str = "reserve";
/// Name it is written under before the rename.
const RESERVE_TMP: &str = "reserve.tmp";

/// Most entries the file holds (one frame of at most 64 KiB).
const MAX_ENTRIES: usize = (MAX_FRAME - FRAME_HDR - CRC_LEN) / RESERVE_ENTRY;

/// Encodes the reservation file.
fn encode(entries: &std::collections::BTreeMap<SensorKey, u32>) -> Vec<u8> {
    let n = entries.len().min(MAX_ENTRIES);
    let len = FRAME_HDR + n * RESERVE_ENTRY + CRC_LEN;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&frame::frame_header(TAG_RESERVE, len));
    let list: Vec<(SensorKey, u32)> = entries.iter().take(n).map(|(&k, &u)| (k, u)).collect();
    out.resize(FRAME_HDR + n * RESERVE_ENTRY, 0xFF);
    frame::reserve_body(&list, &mut out[FRAME_HDR..]);
    let c = CRC32.checksum(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// Decodes the reservation file; `None` if it is damaged.
fn decode(b: &[u8]) -> Option<Vec<(SensorKey, u32)>> {
    let h: [u8; FRAME_HDR] = b.get(..FRAME_HDR)?.try_into().ok()?;
    let Header::Frame { tag, len } = frame::parse_frame_header(h, b.len(), 1) else {
        return None;
    };
    let body = b.get(FRAME_HDR..len.checked_sub(CRC_LEN)?)?;
    let crc = b.get(len - CRC_LEN..len)?;
    let want = CRC32.checksum(b.get(..len - CRC_LEN)?).to_le_bytes();
    if tag != TAG_RESERVE || crc != want {
        return None;
    }
    Some(
        body.chunks_exact(RESERVE_ENTRY)
            .map_while(frame::parse_reserve_entry)
            .collect(),
    )
}

impl<F: FileSystem> FileStorage<F> {
    /// Loads the reservation file at mount (a missing or damaged one holds
    /// nothing; damage is counted as a bad frame).
    pub(super) fn load_reservations(&mut self) {
        self.reserved.clear();
        self.reserve_len = 0;
        let path = self.cfg.root.join(RESERVE_FILE);
        let Ok(mut f) = self.fs.open(&path) else {
            return;
        };
        let Ok(size) = f.size() else { return };
        // The file counts against the disk limit like the data files.
        self.reserve_len = size;
        self.total += size;
        let mut b = vec![0u8; (size as usize).min(MAX_FRAME)];
        if f.read_exact_at(&mut b, 0).is_err() {
            return;
        }
        match decode(&b) {
            Some(list) => self.reserved.extend(list),
            None => self.stats.bad_frames += 1,
        }
    }

    /// Raises the reservations of `entries` and replaces the file, evicting
    /// the oldest data files first if it grows past the disk limit.
    pub(super) fn write_reservations(
        &mut self,
        entries: &[(SensorKey, u32)],
        on_evict: &mut impl FnMut(crate::storage::RunInfo),
    ) -> Result<(), FileError> {
        let mut changed = false;
        for &(k, upto) in entries {
            let old = self.reserved.insert(k, upto);
            changed |= old != Some(upto);
        }
        if !changed {
            return Ok(());
        }
        let bytes = encode(&self.reserved);
        let new_len = bytes.len() as u64;
        while self.total - self.reserve_len + new_len > self.cfg.disk_limit
            && (self.drop_prefilled(None) || self.evict_one(on_evict, None)?)
        {}
        self.flush_dirs()?;
        let root = self.cfg.root.clone();
        let tmp = root.join(RESERVE_TMP);
        let _ = self.fs.remove_file(&tmp);
        let r = self.fs.create_new(&tmp);
        let mut f = self.io(FileOp::Open, r)?;
        let r = f.write_all_at(&bytes, 0);
        self.io(FileOp::Write, r)?;
        let r = f.sync_data();
        self.io(FileOp::Sync, r)?;
        drop(f);
        let r = self.fs.rename(&tmp, &root.join(RESERVE_FILE));
        self.io(FileOp::Rename, r)?;
        self.sync_dir(&root)?;
        self.total = self.total - self.reserve_len + new_len;
        self.reserve_len = new_len;
        self.stats.reserves += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn file_roundtrip_and_damage() {
        let mut m = BTreeMap::new();
        m.insert(SensorKey { source: 2, id: 9 }, 4096u32);
        m.insert(SensorKey { source: 0, id: 1 }, 7u32);
        let b = encode(&m);
        let got = decode(&b).unwrap();
        assert_eq!(got, m.into_iter().collect::<Vec<_>>());
        let mut bad = b.clone();
        bad[FRAME_HDR + 8] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&b[..b.len() - 1]), None);
    }
}
