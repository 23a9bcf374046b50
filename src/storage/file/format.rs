//! The on-disk format: file headers, frame CRCs seeded with the file's
//! number, frame checks and scans, acknowledgement frames (see the module
//! docs of [`super`], "File format").

use super::*;

/// Source of a directory name (inverse of [`source_dir_name`]).
pub(super) fn dir_source(name: &str) -> Option<u8> {
    match name {
        "host" => Some(0),
        "mgc" => Some(1),
        "can_controller" => Some(2),
        _ => {
            let n: u8 = name.strip_prefix("source_")?.parse().ok()?;
            (n > 2 && source_dir_name(n) == name).then_some(n)
        }
    }
}

/// Whether an error says a file or directory is gone (`NotFound`).
pub(super) fn gone(e: &FileError) -> bool {
    matches!(e, FileError::Io { kind, .. } if *kind == io::ErrorKind::NotFound)
}

/// Serial-number "a is after b".
pub(super) const fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

pub(super) fn file_header(seq: u64, source: u8) -> [u8; FILE_HEADER] {
    let mut h = [0xFFu8; FILE_HEADER];
    h[..4].copy_from_slice(&FILE_MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12] = source;
    let c = CRC32.checksum(&h[..16]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// A header's (file number, source, CRC seed); the seed is `None` for a file
/// of the previous format (`SPF1`).
pub(super) fn parse_file_header(h: &[u8]) -> Option<(u64, u8, Option<u64>)> {
    if h.len() < FILE_HEADER
        || (h[..4] != FILE_MAGIC && h[..4] != LEGACY_MAGIC)
        || h[13..16] != [0xFF; 3]
    {
        return None;
    }
    let c = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if CRC32.checksum(&h[..16]) != c {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&h[4..12]);
    let seq = u64::from_le_bytes(s);
    // A number no store can have reached is damage (it would overflow `next_seq`).
    let seed = (h[..4] == FILE_MAGIC).then_some(seq);
    (seq <= MAX_FILE_SEQ).then_some((seq, h[12], seed))
}

/// Largest file sequence number accepted at mount (in a name or a header). Numbers
/// grow by one per file started, so anything above this is damage; rejecting it keeps
/// `next_seq` (one past the largest number seen) from overflowing at mount.
pub(super) const MAX_FILE_SEQ: u64 = u64::MAX - 0xFFFF;

/// CRC-32C of a frame (`body` = every byte before the CRC) in the file whose
/// CRC seed is `seed` (its sequence number): the number goes into the CRC
/// first, so a frame is valid only in the file it was written to, never in the
/// stale bytes a reused file still holds from its previous life. `None`: a file
/// of the previous format, whose CRCs cover the frame only.
pub(super) fn frame_crc(seed: Option<u64>, body: &[u8]) -> u32 {
    let mut d = CRC32.digest();
    if let Some(seq) = seed {
        d.update(&seq.to_le_bytes());
    }
    d.update(body);
    d.finalize()
}

/// Writes the CRC of the frame in `frame` (its last [`CRC_LEN`] bytes) for
/// the file `seq`.
pub(super) fn set_frame_crc(frame: &mut [u8], seq: u64) {
    let body = frame.len() - CRC_LEN;
    let c = frame_crc(Some(seq), &frame[..body]);
    frame[body..].copy_from_slice(&c.to_le_bytes());
}

/// Checks the frame at `off` of `buf`, an image of the file with CRC seed
/// `seed`: header, CRC and body structure.
pub(super) fn check_frame(buf: &[u8], off: usize, seed: Option<u64>) -> Option<FrameRef> {
    if off + FRAME_HDR + CRC_LEN > buf.len() {
        return None;
    }
    let h = [buf[off], buf[off + 1], buf[off + 2], buf[off + 3]];
    let Header::Frame { tag, len } = frame::parse_frame_header(h, buf.len() - off, 1) else {
        return None;
    };
    let body_end = off + len - CRC_LEN;
    let mut c = [0u8; CRC_LEN];
    c.copy_from_slice(&buf[body_end..off + len]);
    if frame_crc(seed, &buf[off..body_end]) != u32::from_le_bytes(c) {
        return None;
    }
    let fr = FrameRef {
        off: off as u32,
        len: len as u32,
        tag,
    };
    if tag == TAG_ACK {
        if len != FRAME_HDR + ACK_BODY + CRC_LEN
            || frame::parse_ack_body(&buf[off + FRAME_HDR..body_end]).is_none()
        {
            return None;
        }
        return Some(fr);
    }
    let mut p = off + FRAME_HDR;
    let mut runs = 0;
    while p < body_end {
        match frame::parse_run_header(&buf[p..body_end], body_end - p) {
            RunParse::Run(_, hl, rl) => {
                p += hl + rl;
                runs += 1;
            }
            _ => return None,
        }
    }
    (runs > 0).then_some(fr)
}

/// Appends an acknowledgement frame to `out`, its CRC left to
/// [`set_frame_crc`] once the file is known.
pub(super) fn push_ack_frame(out: &mut Vec<u8>, key: SensorKey, upto: u32) {
    out.extend_from_slice(&frame::frame_header(
        TAG_ACK,
        FRAME_HDR + ACK_BODY + CRC_LEN,
    ));
    out.extend_from_slice(&frame::ack_body(key, upto));
    out.extend_from_slice(&[0; CRC_LEN]);
}

/// Runs of a verified batch frame: (info, records offset in `buf`).
pub(super) fn frame_runs(buf: &[u8], fr: FrameRef) -> impl Iterator<Item = (RunInfo, usize)> + '_ {
    let end = (fr.off + fr.len) as usize - CRC_LEN;
    let mut p = fr.off as usize + FRAME_HDR;
    core::iter::from_fn(move || {
        if p >= end {
            return None;
        }
        match frame::parse_run_header(&buf[p..end], end - p) {
            RunParse::Run(info, hl, rl) => {
                let rec = p + hl;
                p += hl + rl;
                Some((info, rec))
            }
            _ => None,
        }
    })
}

pub(super) fn scan_image(buf: &[u8], seed: Option<u64>) -> Scan {
    let mut s = Scan {
        frames: Vec::new(),
        good_end: FILE_HEADER,
        middle_damage: false,
        bad_frames: 0,
    };
    let mut off = FILE_HEADER;
    while off < buf.len() {
        if let Some(fr) = check_frame(buf, off, seed) {
            off += fr.len as usize;
            s.good_end = off;
            s.frames.push(fr);
            continue;
        }
        // Resynchronise: is there any valid frame further on?
        s.bad_frames += 1;
        match (off + 1..buf.len()).find(|&p| check_frame(buf, p, seed).is_some()) {
            Some(p) => {
                s.middle_damage = true;
                off = p;
            }
            None => break,
        }
    }
    s
}

pub(super) fn update_keys(keys: &mut Vec<KeyRange>, info: &RunInfo) {
    let end = info.end_seq();
    match keys.iter_mut().find(|k| k.key == info.key) {
        Some(k) => {
            if after(k.first, info.first_seq) {
                k.first = info.first_seq;
            }
            if after(end, k.end) {
                k.end = end;
            }
        }
        None => keys.push(KeyRange {
            key: info.key,
            kind: info.kind,
            first: info.first_seq,
            end,
        }),
    }
}
