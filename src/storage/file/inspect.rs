//! The walk of a spool directory behind `storage::inspect::inspect_dir`: the
//! file checks of mount (`parse_file_header`, `check_frame`, `frame_runs`),
//! reporting instead of repairing. Reads only.

use super::{
    EXT, FILE_HEADER, FileSystem, FsFile, MAX_FILE_SIZE, QUARANTINE_DIR, TAG_ACK, TMP_EXT,
    check_frame, dir_source, frame, frame_runs, parse_file_header,
};
use crate::storage::frame::{CRC_LEN, FRAME_HDR, Header, RunParse};
use crate::storage::inspect::{
    FileFate, FileReport, FrameBody, FrameReport, FrameStatus, Item, ProblemKind, RunReport,
};
use std::io;
use std::path::Path;

/// Walks `root`; returns the valid bytes of the files mount keeps.
pub(crate) fn walk_dir<F: FileSystem>(
    fs: &mut F,
    root: &Path,
    visit: &mut impl FnMut(Item),
) -> io::Result<u64> {
    let mut dirs = fs.list_dir(root)?;
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut used = 0u64;
    let mut img = Vec::new();
    let mut numbers = std::collections::BTreeSet::new();
    for d in dirs.iter().filter(|d| d.is_dir) {
        let dir = root.join(&d.name);
        let quarantine = d.name == QUARANTINE_DIR;
        let dsrc = dir_source(&d.name);
        let Ok(mut entries) = fs.list_dir(&dir) else {
            continue;
        };
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries.iter().filter(|e| !e.is_dir) {
            let path = dir.join(&e.name);
            let spool_name = e
                .name
                .strip_suffix(EXT)
                .is_some_and(|s| s.len() == 16 && u64::from_str_radix(s, 16).is_ok());
            img.clear();
            let mut rep = FileReport {
                path: path.clone(),
                dir_source: dsrc,
                seq: None,
                source: None,
                version: None,
                size: 0,
                valid: 0,
                fate: FileFate::Other,
            };
            // Larger than any file the store writes: only its start is looked at.
            let read = fs.open(&path).and_then(|mut f| {
                let size = f.size()?;
                img.resize(size.min(MAX_FILE_SIZE as u64 + 1) as usize, 0);
                f.read_exact_at(&mut img, 0)?;
                Ok(size)
            });
            let Ok(size) = read else {
                // One unreadable file never stops the walk (nor the mount).
                visit(Item::File(rep));
                visit(super::super::inspect::std_file_problem(
                    ProblemKind::Unreadable,
                    0,
                    0,
                    true,
                ));
                continue;
            };
            rep.size = size;
            if !quarantine && (!spool_name || dsrc.is_none()) {
                // `.tmp` leftovers and foreign files: not data of the store.
                let _ = TMP_EXT;
                visit(Item::File(rep));
                continue;
            }
            let header = parse_file_header(&img);
            if let Some((seq, source, seed)) = header {
                rep.seq = Some(seq);
                rep.source = Some(source);
                rep.version = Some(if seed.is_some() { 2 } else { 1 });
            }
            let Some((seq, source, seed)) = header else {
                let frame_after = img.len() >= FILE_HEADER + FRAME_HDR
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
                rep.fate = if quarantine {
                    FileFate::Quarantined
                } else if img.is_empty() || (!frame_after && size <= MAX_FILE_SIZE as u64) {
                    FileFate::Spare
                } else {
                    FileFate::Quarantine
                };
                let damage = rep.fate == FileFate::Quarantine;
                visit(Item::File(rep));
                if !img.is_empty() && !img.iter().all(|&b| b == 0) {
                    visit(super::super::inspect::std_file_problem(
                        ProblemKind::BadFileHeader,
                        0,
                        FILE_HEADER as u64,
                        damage,
                    ));
                }
                continue;
            };
            // Two files with one number: mount keeps the first (name order) and
            // quarantines the other.
            let dup = !quarantine && !numbers.insert(seq);
            // Frames as mount checks them, recording where the bad regions are.
            let mut frames = Vec::new();
            let mut bad: Vec<(usize, usize)> = Vec::new();
            let mut off = FILE_HEADER;
            let mut good_end = FILE_HEADER;
            let mut middle = false;
            while off < img.len() {
                if let Some(fr) = check_frame(&img, off, seed) {
                    off += fr.len as usize;
                    good_end = off;
                    frames.push(fr);
                    continue;
                }
                match (off + 1..img.len()).find(|&p| check_frame(&img, p, seed).is_some()) {
                    Some(p) => {
                        middle = true;
                        bad.push((off, p));
                        off = p;
                    }
                    None => {
                        bad.push((off, img.len()));
                        break;
                    }
                }
            }
            // Read by the store after mount: kept as it is, or rewritten from
            // its good frames (damage between them, see `mount_file`).
            let live = !quarantine && !frames.is_empty() && !dup;
            rep.valid = good_end as u64;
            rep.fate = if quarantine {
                FileFate::Quarantined
            } else if dup && !frames.is_empty() {
                FileFate::Quarantine
            } else if frames.is_empty() {
                FileFate::Spare
            } else if middle {
                FileFate::Rewrite
            } else if (good_end as u64) < size {
                FileFate::DataWithTail
            } else {
                FileFate::Data
            };
            if live && middle {
                // The rewrite: the header and the good frames.
                used += FILE_HEADER as u64 + frames.iter().map(|f| f.len as u64).sum::<u64>();
            } else if live {
                used += good_end as u64;
            }
            visit(Item::File(rep));
            if dup {
                visit(super::super::inspect::std_file_problem(
                    ProblemKind::DuplicateSequence,
                    4,
                    8,
                    true,
                ));
            }
            if quarantine {
                visit(super::super::inspect::std_file_problem(
                    ProblemKind::Quarantined,
                    0,
                    size,
                    false,
                ));
            }
            let mut b = bad.iter().peekable();
            for fr in &frames {
                while let Some(&&(s, e)) = b.peek().filter(|r| r.0 < fr.off as usize) {
                    bad_region(&img, s, e, middle && !quarantine, live, visit);
                    b.next();
                }
                let at = fr.off as usize;
                let body = if fr.tag == TAG_ACK {
                    match frame::parse_ack_body(&img[at + FRAME_HDR..]) {
                        Some((key, upto)) => {
                            if key.source != source {
                                visit(super::super::inspect::std_file_problem(
                                    ProblemKind::ForeignMark,
                                    at as u64,
                                    fr.len as u64,
                                    false,
                                ));
                            }
                            FrameBody::Ack { key, upto }
                        }
                        None => FrameBody::Unknown,
                    }
                } else {
                    FrameBody::Batch {
                        runs: frame_runs(&img, *fr).count().min(u16::MAX as usize) as u16,
                        compact: false,
                    }
                };
                visit(Item::Frame(FrameReport {
                    offset: at as u64,
                    len: fr.len,
                    tag: fr.tag,
                    live,
                    status: FrameStatus::Good,
                    body,
                }));
                if fr.tag != TAG_ACK {
                    for (info, rec) in frame_runs(&img, *fr) {
                        visit(Item::Run(RunReport {
                            frame: at as u64,
                            records: rec as u64,
                            info,
                            live,
                        }));
                    }
                }
            }
            for &(s, e) in b {
                // After the last good frame: a torn write or a stale end, never
                // read (left out of the rewrite of a file damaged in the middle).
                let damage = middle && !quarantine;
                bad_region(&img, s, e, damage, live && damage, visit);
            }
        }
    }
    Ok(used)
}

/// Reports a region of a file that holds no valid frame: a frame whose header
/// checks out there is reported as damaged (with the runs its header claims:
/// what the damage cost), `live` when it sits in a file the store reads, and
/// the region as a problem (damage between good frames when `middle`).
fn bad_region(
    img: &[u8],
    s: usize,
    e: usize,
    middle: bool,
    live: bool,
    visit: &mut impl FnMut(Item),
) {
    if s + FRAME_HDR <= img.len() {
        let h = [img[s], img[s + 1], img[s + 2], img[s + 3]];
        if let Header::Frame { tag, len } = frame::parse_frame_header(h, img.len() - s, 1) {
            visit(Item::Frame(FrameReport {
                offset: s as u64,
                len: len as u32,
                tag,
                live,
                status: FrameStatus::BadCrc,
                body: FrameBody::Unknown,
            }));
            if tag != TAG_ACK {
                let end = s + len - CRC_LEN;
                let mut p = s + FRAME_HDR;
                while p < end {
                    match frame::parse_run_header(&img[p..end], end - p) {
                        RunParse::Run(info, hl, rl) => {
                            visit(Item::Run(RunReport {
                                frame: s as u64,
                                records: (p + hl) as u64,
                                info,
                                live: false,
                            }));
                            p += hl + rl;
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    let kind = if middle {
        ProblemKind::MiddleDamage
    } else {
        ProblemKind::TrailingBytes
    };
    // Zeros after the frames: a prefilled spare's rest, not a problem.
    if !middle && img[s..e].iter().all(|&b| b == 0) {
        return;
    }
    visit(super::super::inspect::std_file_problem(
        kind,
        s as u64,
        (e - s) as u64,
        middle,
    ));
}
