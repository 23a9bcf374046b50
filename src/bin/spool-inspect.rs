//! `spool-inspect`: reads a NOR flash dump or a spool directory pulled from a
//! device, read-only, through the library's own mount, and prints what it holds.
//! See docs/inspect.md. Exit status: 0 fine, 1 damage found by `--check`,
//! 2 bad arguments or an input that cannot be read or mounted.

use clap::{Arg, ArgAction, ArgMatches, Command};
use indicatif::{ProgressBar, ProgressStyle};
use sensor_spool::storage::file::{FileConfig, MAX_FILE_SIZE};
use sensor_spool::storage::inspect::{
    self, FileFate, FrameBody, FrameStatus, ImageFlash, InspectTotals, Item, OverlayFs, Problem,
    ProblemKind, ReadOnlyFs, SectorState,
};
use sensor_spool::storage::{
    FileStorage, LogEntry, NorFlashStorage, ReadHint, RecordKind, RunInfo, SensorKey, Storage,
    StorageStats,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Inputs larger than this get a progress bar (on a terminal).
const PROGRESS_MIN: u64 = 4 << 20;

fn cli() -> Command {
    Command::new("spool-inspect")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Read a sensor-spool flash image or spool directory (read-only), check it, export what it holds")
        .arg(Arg::new("input").required(true).value_name("IMAGE|DIR")
            .help("raw NOR flash dump (SPL2), or a FileStorage spool directory"))
        .arg(Arg::new("sector-size").long("sector-size").value_name("BYTES")
            .help("erase sector size of the image (power of two, 256..=1Mi; k/K suffix allowed) [default: from the image's sector headers]"))
        .arg(Arg::new("write-size").long("write-size").value_name("BYTES")
            .help("program unit of the image: 1, 2, 4, 8, 16 or 32 [default: the one whose frames all check out]"))
        .arg(Arg::new("check").long("check").action(ArgAction::SetTrue)
            .help("check every CRC and every invariant mount relies on; list each problem with its byte offset; exit 1 on damage"))
        .arg(Arg::new("frames").long("frames").action(ArgAction::SetTrue)
            .help("frame-by-frame listing (sectors or files, frames, runs, problems)"))
        .arg(Arg::new("export").long("export").value_name("FORMAT").value_parser(["csv", "json"])
            .help("print records instead of the summary: one row each (source, sensor, seq, time, value, kind); unacknowledged ones unless --all"))
        .arg(Arg::new("all").long("all").action(ArgAction::SetTrue)
            .help("with --export: acknowledged records still on the medium too"))
        .arg(Arg::new("sensor").long("sensor").value_name("[SOURCE:]ID")
            .help("with --export: only this sensor (any source unless given)"))
        .arg(Arg::new("since").long("since").value_name("TIME")
            .help("with --export: records at or after TIME (UTC: 2026-11-22T08:00:00Z, 2026-11-22, or ms since 1970)"))
        .arg(Arg::new("until").long("until").value_name("TIME")
            .help("with --export: records before TIME"))
        .arg(Arg::new("time").long("time").value_name("FORMAT").value_parser(["iso", "ms"]).default_value("iso")
            .help("time column of --export: ISO 8601 UTC or milliseconds since 1970"))
        .arg(Arg::new("value").long("value").value_name("TYPE").value_parser(["u32", "i32", "f32"]).default_value("u32")
            .help("how to print the 4-byte value of a record"))
        .arg(Arg::new("quiet").long("quiet").short('q').action(ArgAction::SetTrue)
            .help("no progress bar"))
}

/// Options after parsing.
struct Opts {
    input: PathBuf,
    sector_size: Option<usize>,
    write_size: Option<usize>,
    check: bool,
    frames: bool,
    export: Option<String>,
    all: bool,
    sensor: Option<(Option<u8>, u32)>,
    since: Option<u64>,
    until: Option<u64>,
    time_ms: bool,
    value: String,
    progress: bool,
}

fn size_arg(s: &str) -> Result<usize, String> {
    let (num, mul) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1024),
        None => (s, 1),
    };
    num.parse::<usize>()
        .map(|n| n * mul)
        .map_err(|_| format!("not a size: {s}"))
}

fn opts(m: &ArgMatches) -> Result<Opts, String> {
    let get = |k: &str| m.get_one::<String>(k).cloned();
    let sensor = match get("sensor") {
        None => None,
        Some(s) => Some(match s.split_once(':') {
            Some((a, b)) => (
                Some(a.parse().map_err(|_| format!("bad --sensor source: {a}"))?),
                b.parse().map_err(|_| format!("bad --sensor id: {b}"))?,
            ),
            None => (
                None,
                s.parse().map_err(|_| format!("bad --sensor id: {s}"))?,
            ),
        }),
    };
    Ok(Opts {
        input: PathBuf::from(get("input").unwrap_or_default()),
        sector_size: get("sector-size").map(|s| size_arg(&s)).transpose()?,
        write_size: get("write-size").map(|s| size_arg(&s)).transpose()?,
        check: m.get_flag("check"),
        frames: m.get_flag("frames"),
        export: get("export"),
        all: m.get_flag("all"),
        sensor,
        since: get("since").map(|s| parse_time(&s)).transpose()?,
        until: get("until").map(|s| parse_time(&s)).transpose()?,
        time_ms: get("time").as_deref() == Some("ms"),
        value: get("value").unwrap_or_else(|| "u32".into()),
        progress: !m.get_flag("quiet") && io::stderr().is_terminal(),
    })
}

// ---- time -------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Milliseconds since 1970 as ISO 8601 UTC.
fn iso(ms: u64) -> String {
    let s = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(s.div_euclid(86_400));
    let r = s.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        r / 3600,
        r / 60 % 60,
        r % 60,
        ms % 1000
    )
}

/// `2026-11-22T08:00:00[.123]Z`, `2026-11-22`, or milliseconds since 1970.
fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("not a time: {s} (2026-11-22T08:00:00Z, 2026-11-22 or ms since 1970)");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut p = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (p.next(), p.next(), p.next(), p.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, m, d) as u64 * 86_400_000;
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let v: Vec<&str> = hms.split(':').collect();
        let (h, mi, se) = match v.as_slice() {
            [h, m] => (h.parse::<u64>(), m.parse::<u64>(), Ok(0)),
            [h, m, s] => (h.parse::<u64>(), m.parse::<u64>(), s.parse::<u64>()),
            _ => return Err(bad()),
        };
        let (h, mi, se) = (
            h.map_err(|_| bad())?,
            mi.map_err(|_| bad())?,
            se.map_err(|_| bad())?,
        );
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let f = if frac.is_empty() {
            0
        } else {
            let f3: String = frac.chars().chain("000".chars()).take(3).collect();
            f3.parse::<u64>().map_err(|_| bad())?
        };
        ms += (h * 3600 + mi * 60 + se) * 1000 + f;
    }
    Ok(ms)
}

// ---- reading the medium -----------------------------------------------------------

/// Every record a mounted store holds, for the report (object-safe: the report
/// is not generic over the geometry).
trait Records {
    /// Calls `f` with every record of the sensors in `starts`, each from its
    /// start on, in sequence order per sensor (sensors interleave).
    fn records(
        &mut self,
        starts: &[(SensorKey, u32)],
        f: &mut dyn FnMut(Rec),
    ) -> Result<(), String>;
}

impl<const W: usize, const E: usize> Records for Flash<'_, W, E> {
    /// One pass over the log (`inspect_records`), each record once: the first
    /// copy at or after the sensor's position, as `Storage::read` serves it.
    fn records(
        &mut self,
        starts: &[(SensorKey, u32)],
        f: &mut dyn FnMut(Rec),
    ) -> Result<(), String> {
        let mut next: BTreeMap<SensorKey, u32> = starts.iter().copied().collect();
        let mut buf = vec![0u8; 64 * 1024];
        self.inspect_records(&mut buf, |run, bytes| {
            let Some(n) = next.get_mut(&run.key) else {
                return;
            };
            let size = run.kind.record_size();
            for (k, rb) in bytes.chunks_exact(size).enumerate() {
                let seq = run.first_seq.wrapping_add(k as u32);
                if after(*n, seq) {
                    continue;
                }
                f(decode(&run, seq, rb));
                *n = seq.wrapping_add(1);
            }
        })
        .map_err(|e| format!("reading the log: {e}"))
    }
}

impl Records for FileStorage<OverlayFs> {
    fn records(
        &mut self,
        starts: &[(SensorKey, u32)],
        f: &mut dyn FnMut(Rec),
    ) -> Result<(), String> {
        read_all(self, starts, f)
    }
}

/// What the medium is, for the summary.
enum Media {
    Flash {
        bytes: u64,
        sector_size: usize,
        write_size: usize,
        how: String,
    },
    Dir,
}

/// Everything collected before the report.
struct Inspected {
    media: Media,
    items: Vec<Item>,
    totals: InspectTotals,
    log: Vec<LogEntry>,
    stats: StorageStats,
    elapsed_mount: f64,
}

fn bar(total: u64, on: bool, what: &str) -> ProgressBar {
    if !on || total < PROGRESS_MIN {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    if let Ok(s) = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {eta}") {
        b.set_style(s.progress_chars("=> "));
    }
    b.set_message(what.to_string());
    b
}

/// Mounts through the library, walks, recovers, then hands the store to `report`.
fn run_store<S: Storage + Records>(
    mut st: S,
    media: Media,
    walk: impl FnOnce(&mut S, &mut dyn FnMut(Item)) -> Result<InspectTotals, String>,
    report: &mut dyn FnMut(Inspected, &mut dyn Records) -> Result<i32, String>,
) -> Result<i32, String> {
    let t = Instant::now();
    st.mount().map_err(|e| format!("mount failed: {e}"))?;
    let mut items = Vec::new();
    let totals = walk(&mut st, &mut |i| items.push(i))?;
    let mut log = Vec::new();
    st.recover(|e| log.push(e))
        .map_err(|e| format!("recover failed: {e}"))?;
    let stats = st.stats();
    let ins = Inspected {
        media,
        items,
        totals,
        log,
        stats,
        elapsed_mount: t.elapsed().as_secs_f64(),
    };
    report(ins, &mut st)
}

/// A geometry-generic task (the flash's write and sector sizes are constants).
trait GeomTask {
    type Out;
    fn call<const W: usize, const E: usize>(self) -> Self::Out;
}

macro_rules! sector_sizes {
    ($w:literal, $e:expr, $task:expr) => {
        match $e {
            256 => Some($task.call::<$w, 256>()),
            512 => Some($task.call::<$w, 512>()),
            1024 => Some($task.call::<$w, 1024>()),
            2048 => Some($task.call::<$w, 2048>()),
            4096 => Some($task.call::<$w, 4096>()),
            8192 => Some($task.call::<$w, 8192>()),
            16384 => Some($task.call::<$w, 16384>()),
            32768 => Some($task.call::<$w, 32768>()),
            65536 => Some($task.call::<$w, 65536>()),
            131072 => Some($task.call::<$w, 131072>()),
            262144 => Some($task.call::<$w, 262144>()),
            524288 => Some($task.call::<$w, 524288>()),
            1048576 => Some($task.call::<$w, 1048576>()),
            _ => None,
        }
    };
}

fn dispatch<T: GeomTask>(w: usize, e: usize, task: T) -> Option<T::Out> {
    match w {
        1 => sector_sizes!(1, e, task),
        2 => sector_sizes!(2, e, task),
        4 => sector_sizes!(4, e, task),
        8 => sector_sizes!(8, e, task),
        16 => sector_sizes!(16, e, task),
        32 => sector_sizes!(32, e, task),
        _ => None,
    }
}

type Flash<'a, const W: usize, const E: usize> = NorFlashStorage<ImageFlash<'a, W, E>, 4096, 255>;

/// How well a write size reads the image: (good live frames, damage).
struct Probe<'a>(&'a [u8]);

impl GeomTask for Probe<'_> {
    type Out = Option<(u32, u32)>;
    fn call<const W: usize, const E: usize>(self) -> Self::Out {
        let mut st = Flash::<W, E>::new(ImageFlash::new(self.0)).ok()?;
        st.mount().ok()?;
        let t = st.inspect(|_| {}).ok()?;
        Some((t.good_frames, t.damage))
    }
}

struct RunFlash<'a, 'r> {
    bytes: &'a [u8],
    media: Media,
    progress: bool,
    report: &'r mut dyn FnMut(Inspected, &mut dyn Records) -> Result<i32, String>,
}

impl GeomTask for RunFlash<'_, '_> {
    type Out = Result<i32, String>;
    fn call<const W: usize, const E: usize>(self) -> Self::Out {
        let st = Flash::<W, E>::new(ImageFlash::new(self.bytes))
            .map_err(|e| format!("geometry refused by the library: {e}"))?;
        let pb = bar(self.bytes.len() as u64, self.progress, "walking");
        let r = run_store(
            st,
            self.media,
            |st, visit| {
                let mut t = st
                    .inspect(|i| {
                        if let Item::Sector(s) = &i {
                            pb.set_position(s.offset + E as u64);
                        }
                        visit(i)
                    })
                    .map_err(|e| format!("inspect failed: {e}"))?;
                // Bytes after the last whole sector are not part of the flash.
                let whole = self.bytes.len() - self.bytes.len() % E;
                if whole < self.bytes.len() {
                    let p = Item::Problem(Problem {
                        offset: whole as u64,
                        len: (self.bytes.len() - whole) as u64,
                        kind: ProblemKind::PartialSector,
                        damage: false,
                    });
                    t.add(&p);
                    visit(p);
                }
                Ok(t)
            },
            self.report,
        );
        pb.finish_and_clear();
        r
    }
}

fn read_image(path: &Path, progress: bool) -> Result<Vec<u8>, String> {
    // Opened read-only: the tool never writes to its input.
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = bar(len, progress, "reading");
    let mut v = Vec::with_capacity(len as usize);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        v.extend_from_slice(&buf[..n]);
        pb.set_position(v.len() as u64);
    }
    pb.finish_and_clear();
    Ok(v)
}

fn run_flash(
    o: &Opts,
    report: &mut dyn FnMut(Inspected, &mut dyn Records) -> Result<i32, String>,
) -> Result<i32, String> {
    let bytes = read_image(&o.input, o.progress)?;
    let (e, e_how) = match o.sector_size {
        Some(e) => (e, "given"),
        None => (
            inspect::guess_sector_size(&bytes).ok_or(
                "cannot tell the sector size from the image's sector headers (fewer than two \
                 sectors written, or none fits): give --sector-size",
            )?,
            "from the sector headers",
        ),
    };
    if !e.is_power_of_two() || !(256..=1 << 20).contains(&e) {
        return Err(format!(
            "--sector-size {e}: a power of two in 256..=1048576"
        ));
    }
    if bytes.len() / e < 2 {
        return Err(format!(
            "{}: {} bytes, fewer than two {e}-byte sectors",
            o.input.display(),
            bytes.len()
        ));
    }
    let (w, w_how) = match o.write_size {
        Some(w) => (w, "given".to_string()),
        None => {
            // The write size is not on the medium: the one whose frames check out.
            let mut best: Option<(usize, (u32, u32))> = None;
            let mut ties = Vec::new();
            for w in [1usize, 2, 4, 8, 16, 32] {
                // The first sectors tell (a whole 16 MiB walk per candidate would not pay).
                let prefix = &bytes[..bytes.len().min((64 * e).max(256 << 10))];
                let Some(Some(score)) = dispatch(w, e, Probe(prefix)) else {
                    continue;
                };
                let better = |a: (u32, u32), b: (u32, u32)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
                match best {
                    // Frames that check out at a larger write size too: the
                    // larger one is the likelier (the walk reads them alike).
                    Some((_, b)) if score == b => {
                        ties.push(w);
                        best = Some((w, score));
                    }
                    Some((_, b)) if !better(score, b) => {}
                    _ => {
                        best = Some((w, score));
                        ties = vec![w];
                    }
                }
            }
            let (w, _) = best.ok_or("no write size mounts this image: give --write-size")?;
            let how = if ties.len() > 1 {
                format!(
                    "from the frames; {} read this image alike",
                    ties.iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                "from the frames".into()
            };
            (w, how)
        }
    };
    let media = Media::Flash {
        bytes: bytes.len() as u64,
        sector_size: e,
        write_size: w,
        how: format!("sector size {e_how}, write size {w_how}"),
    };
    let task = RunFlash {
        bytes: &bytes,
        media,
        progress: o.progress,
        report,
    };
    dispatch(w, e, task).unwrap_or_else(|| Err(format!("--write-size {w}: 1, 2, 4, 8, 16 or 32")))
}

fn run_dir(
    o: &Opts,
    report: &mut dyn FnMut(Inspected, &mut dyn Records) -> Result<i32, String>,
) -> Result<i32, String> {
    let mut cfg = FileConfig::new(&o.input);
    // Any file the store may have written is read; nothing is made ahead.
    cfg.file_size = MAX_FILE_SIZE;
    cfg.disk_limit = u64::MAX / 2;
    cfg.free_space_reserve = 0;
    cfg.background_spares = false;
    // The library's own mount, repairs included, over an in-memory copy-on-write
    // overlay: the store serves what it would after a real mount; the directory
    // is never written (the walk reads the files as they are on disk).
    let st = FileStorage::with_fs(OverlayFs::new(), cfg).map_err(|e| e.to_string())?;
    let total: u64 = dir_bytes(&o.input);
    let pb = bar(total, o.progress, "reading");
    let root = o.input.clone();
    let mut done = 0u64;
    let r = run_store(
        st,
        Media::Dir,
        |_, visit| {
            inspect::inspect_dir(&mut ReadOnlyFs, &root, |i| {
                if let Item::File(f) = &i {
                    done += f.size;
                    pb.set_position(done);
                }
                visit(i)
            })
            .map_err(|e| format!("{}: {e}", root.display()))
        },
        report,
    );
    pb.finish_and_clear();
    r
}

fn dir_bytes(root: &Path) -> u64 {
    let mut t = 0;
    if let Ok(rd) = std::fs::read_dir(root) {
        for d in rd.flatten() {
            if let Ok(rd2) = std::fs::read_dir(d.path()) {
                for f in rd2.flatten() {
                    t += f.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
    }
    t
}

// ---- the report -------------------------------------------------------------------

const fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Per-sensor figures from reading every record the store holds.
#[derive(Default)]
struct SensorSum {
    kind: Option<RecordKind>,
    held: u64,
    acked: u64,
    first: Option<u32>,
    last: u32,
    t_min: u64,
    t_max: u64,
    gaps: u64,
    gap_records: u64,
    /// Records in damaged live frames (what the damage cost).
    damaged: u64,
    mark: Option<u32>,
    /// Last record read.
    prev: Option<u32>,
}

/// One record, decoded.
struct Rec {
    key: SensorKey,
    kind: RecordKind,
    seq: u32,
    time_ms: u64,
    value: u32,
}

fn decode(run: &RunInfo, seq: u32, bytes: &[u8]) -> Rec {
    let i = seq.wrapping_sub(run.first_seq) as u64;
    let w = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    match run.kind {
        RecordKind::Tsd => Rec {
            key: run.key,
            kind: run.kind,
            seq,
            time_ms: run
                .meta
                .base_time
                .wrapping_add(i * run.meta.interval as u64),
            value: w(0),
        },
        RecordKind::Evt => Rec {
            key: run.key,
            kind: run.kind,
            seq,
            time_ms: w(0) as u64 * 1000,
            value: w(4),
        },
    }
}

/// Reads every record of the given sensors, each from its start on, through
/// `Storage::read_hinted`: one run per sensor in turn, so the reads move
/// through the log together (each frame is checked once, not once per sensor).
/// Records of one sensor come in sequence order; sensors interleave.
fn read_all<S: Storage>(
    r: &mut S,
    starts: &[(SensorKey, u32)],
    f: &mut dyn FnMut(Rec),
) -> Result<(), String> {
    struct Cur {
        key: SensorKey,
        from: u32,
        seq: u32,
        hint: ReadHint,
        read: u64,
    }
    let mut cur: Vec<Cur> = starts
        .iter()
        .map(|&(key, from)| Cur {
            key,
            from,
            seq: from,
            hint: ReadHint::NONE,
            read: 0,
        })
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    while !cur.is_empty() {
        let mut i = 0;
        while i < cur.len() {
            let c = &mut cur[i];
            let got = r
                .read_hinted(c.key, c.seq, &mut c.hint, &mut buf)
                .map_err(|e| format!("read: {e}"))?;
            let more = match got {
                None => false,
                Some(ro) => {
                    let size = ro.run.kind.record_size();
                    for k in 0..ro.count {
                        let s = ro.first.wrapping_add(k as u32);
                        f(decode(&ro.run, s, &buf[k * size..(k + 1) * size]));
                    }
                    let next = ro.first.wrapping_add(ro.count as u32);
                    c.read += ro.count as u64;
                    // Serial order: stop rather than loop on a forged image.
                    let ok = ro.count > 0
                        && after(next, c.seq)
                        && !after(next, c.from.wrapping_add(0x8000_0000))
                        && c.read <= u32::MAX as u64;
                    c.seq = next;
                    ok
                }
            };
            if more {
                i += 1;
            } else {
                cur.swap_remove(i);
            }
        }
    }
    Ok(())
}

fn value_str(v: u32, as_: &str) -> String {
    match as_ {
        "i32" => (v as i32).to_string(),
        "f32" => {
            let f = f32::from_bits(v);
            if f.is_finite() {
                format!("{f}")
            } else {
                "null".into()
            }
        }
        _ => v.to_string(),
    }
}

fn kind_str(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Tsd => "tsd",
        RecordKind::Evt => "evt",
    }
}

fn problem_str(k: ProblemKind) -> &'static str {
    match k {
        ProblemKind::BadFrameHeader => "damaged frame header",
        ProblemKind::BadCrc => "frame CRC mismatch",
        ProblemKind::BadBody => "frame body does not decode",
        ProblemKind::TrailingBytes => "bytes after the last good frame",
        ProblemKind::NoSectorHeader => "sector not erased, no valid header",
        ProblemKind::OtherVersion => "sector of another format version",
        ProblemKind::MissingSector => "live sector number missing (header destroyed?)",
        ProblemKind::DuplicateSequence => "two sectors, or files, with one number",
        ProblemKind::Unreadable => "file cannot be read",
        ProblemKind::RingOrder => "live sector out of ring order",
        ProblemKind::PartialSector => "bytes after the last whole sector",
        ProblemKind::BadFileHeader => "damaged file header",
        ProblemKind::MiddleDamage => "damaged bytes between good frames",
        ProblemKind::ForeignMark => "acknowledgement mark of another source (ignored)",
        ProblemKind::Quarantined => "file in quarantine/ (not read by the store)",
        _ => "problem",
    }
}

fn tag_str(tag: u8) -> &'static str {
    match tag {
        0xB5 => "batch",
        0xB8 => "batch (packed)",
        0xB6 => "batch (compact TSD)",
        0xB7 => "batch (compact EVT)",
        0xAC => "ack",
        0xE7 => "evict",
        0xA5 => "reserve",
        _ => "?",
    }
}

fn fate_str(f: FileFate) -> &'static str {
    match f {
        FileFate::Data => "data",
        FileFate::DataWithTail => "data, unread tail",
        FileFate::Rewrite => {
            "data, damaged in the middle: mount rewrites it from its good frames (here in memory)"
        }
        FileFate::Quarantine => {
            "mount moves it to quarantine/ (damaged header, too large, or a number twice): not read"
        }
        FileFate::Spare => "spare",
        FileFate::Quarantined => "quarantined",
        _ => "not a spool file",
    }
}

fn key_str(k: SensorKey) -> String {
    format!("{}:{}", k.source, k.id)
}

struct Report<'o> {
    o: &'o Opts,
    out: Box<dyn Write>,
}

impl Report<'_> {
    fn run(&mut self, ins: Inspected, r: &mut dyn Records) -> Result<i32, String> {
        let o = self.o;
        // Latest mark per sensor (log order: the latest wins, as in the store).
        let mut marks: BTreeMap<SensorKey, u32> = BTreeMap::new();
        let mut sums: BTreeMap<SensorKey, SensorSum> = BTreeMap::new();
        for e in &ins.log {
            match *e {
                LogEntry::Ack { key, upto } => {
                    marks.insert(key, upto);
                }
                // Reservations bound future numbers; they hold no record.
                LogEntry::Reserve { .. } => {}
                LogEntry::Run(info) => {
                    let s = sums.entry(info.key).or_default();
                    s.kind = Some(info.kind);
                    // Lowest first sequence number (serial order).
                    if s.first.is_none_or(|f| after(f, info.first_seq)) {
                        s.first = Some(info.first_seq);
                    }
                }
            }
        }
        for (k, s) in sums.iter_mut() {
            s.mark = marks.get(k).copied();
        }
        // Records the damage cost (runs claimed by damaged live frames).
        let mut damaged_frame = false;
        for i in &ins.items {
            match i {
                Item::Frame(f) => damaged_frame = f.live && f.status != FrameStatus::Good,
                Item::Run(run) if damaged_frame && !run.live => {
                    sums.entry(run.info.key).or_default().damaged += run.info.count as u64;
                }
                _ => {}
            }
        }
        if let Some(fmt) = &o.export {
            return self.export(fmt, &sums, r);
        }
        // Read every held record once: counts, ranges, gaps.
        let mut per_source: BTreeMap<u8, (u64, u64, u64)> = BTreeMap::new();
        let starts: Vec<(SensorKey, u32)> = sums
            .iter()
            .filter_map(|(k, s)| s.first.map(|f| (*k, f)))
            .collect();
        r.records(&starts, &mut |rec| {
            let Some(s) = sums.get_mut(&rec.key) else {
                return;
            };
            s.kind = Some(rec.kind);
            match s.prev {
                Some(p) => {
                    let missing = rec.seq.wrapping_sub(p).wrapping_sub(1);
                    if missing > 0 && missing < 0x8000_0000 {
                        s.gaps += 1;
                        s.gap_records += missing as u64;
                    }
                }
                None => {
                    s.first = Some(rec.seq);
                    s.t_min = rec.time_ms;
                }
            }
            s.prev = Some(rec.seq);
            s.held += 1;
            s.last = rec.seq;
            s.t_min = s.t_min.min(rec.time_ms);
            s.t_max = s.t_max.max(rec.time_ms);
            if s.mark.is_some_and(|u| after(u, rec.seq)) {
                s.acked += 1;
            }
            let e = per_source.entry(rec.key.source).or_insert((0, u64::MAX, 0));
            e.0 += 1;
            e.1 = e.1.min(rec.time_ms);
            e.2 = e.2.max(rec.time_ms);
        })?;
        let mut t = String::new();
        self.summary(&mut t, &ins, &sums, &per_source, &marks);
        if o.frames {
            self.frames(&mut t, &ins);
        }
        let mut code = 0;
        if o.check {
            code = self.check(&mut t, &ins);
        }
        self.out
            .write_all(t.as_bytes())
            .map_err(|e| e.to_string())?;
        self.out.flush().map_err(|e| e.to_string())?;
        Ok(code)
    }

    fn summary(
        &self,
        t: &mut String,
        ins: &Inspected,
        sums: &BTreeMap<SensorKey, SensorSum>,
        per_source: &BTreeMap<u8, (u64, u64, u64)>,
        marks: &BTreeMap<SensorKey, u32>,
    ) {
        let o = self.o;
        let tot = &ins.totals;
        let _ = writeln!(t, "== {} ==", o.input.display());
        match &ins.media {
            Media::Flash {
                bytes,
                sector_size,
                write_size,
                how,
            } => {
                let mut c = [0u32; 5];
                let mut head = None;
                let mut versions = BTreeMap::new();
                for i in &ins.items {
                    if let Item::Sector(s) = i {
                        let k = match s.state {
                            SectorState::Live => 0,
                            SectorState::Stale => 1,
                            SectorState::Erased => 2,
                            SectorState::NoHeader => 3,
                            _ => 4,
                        };
                        c[k] += 1;
                        if let SectorState::OtherVersion(v) = s.state {
                            *versions.entry(v).or_insert(0) += 1;
                        }
                        if s.head {
                            head = Some((s.index, s.seq.unwrap_or(0), s.floor.unwrap_or(0)));
                        }
                    }
                }
                let n = bytes / *sector_size as u64;
                let _ = writeln!(t, "medium:        NOR flash image, {bytes} bytes");
                let _ = writeln!(
                    t,
                    "format:        SPL2 (version 2){}",
                    if versions.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; sectors of other versions (not read): {}",
                            versions
                                .iter()
                                .map(|(v, n)| format!("'{}' x {n}", *v as char))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                let _ = writeln!(
                    t,
                    "geometry:      {n} sectors x {sector_size} B, write size {write_size} B ({how})"
                );
                let _ = writeln!(
                    t,
                    "sectors:       {} live, {} stale (evicted, not erased yet), {} erased, {} without header, {} other version",
                    c[0], c[1], c[2], c[3], c[4]
                );
                let oldest = ins
                    .items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Sector(s) if s.state == SectorState::Live => s.seq,
                        _ => None,
                    })
                    .min();
                match head {
                    Some((s, q, _)) => {
                        let _ = writeln!(
                            t,
                            "log:           newest sector {s} (number {q}), oldest live number {}; {q} sectors opened since the medium was new",
                            oldest.unwrap_or(q),
                        );
                    }
                    None => {
                        let _ = writeln!(t, "log:           empty (no valid sector header)");
                    }
                }
                let cap = (n - 1) * *sector_size as u64;
                let _ = writeln!(
                    t,
                    "space:         {} B used in live sectors (headers and frames), {} B free of the {} B the log can hold (N - 1 sectors)",
                    tot.used_bytes,
                    cap.saturating_sub(tot.used_bytes),
                    cap
                );
                if let Some((_, q, _)) = head {
                    let _ = writeln!(
                        t,
                        "erase counts:  not recorded on flash; sectors are opened in ring order, so {q} openings over {n} sectors erased each {}..={} times",
                        q / n,
                        q.div_ceil(n)
                    );
                }
            }
            Media::Dir => {
                let mut data = 0;
                let mut spare = 0;
                let mut quarantined = 0;
                let mut other = 0;
                let mut rewrite = 0;
                let mut to_quarantine = 0;
                let mut bytes = 0u64;
                let mut versions: BTreeMap<u8, u32> = BTreeMap::new();
                for i in &ins.items {
                    if let Item::File(f) = i {
                        bytes += f.size;
                        match f.fate {
                            FileFate::Data | FileFate::DataWithTail => data += 1,
                            FileFate::Spare => spare += 1,
                            FileFate::Quarantined => quarantined += 1,
                            FileFate::Rewrite => rewrite += 1,
                            FileFate::Quarantine => to_quarantine += 1,
                            _ => other += 1,
                        }
                        if let Some(v) = f.version {
                            *versions.entry(v).or_insert(0) += 1;
                        }
                    }
                }
                let _ = writeln!(
                    t,
                    "medium:        spool directory (FileStorage), {bytes} bytes in files"
                );
                let _ = writeln!(
                    t,
                    "format:        {}",
                    versions
                        .iter()
                        .map(|(v, n)| format!("SPF{v} (version {v}) x {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let _ = writeln!(
                    t,
                    "files:         {data} data, {rewrite} rewritten from their good frames and {to_quarantine} quarantined by the mount (in memory here), {spare} spare, {quarantined} in quarantine/, {other} other"
                );
                let _ = writeln!(t, "space:         {} B valid in data files", tot.used_bytes);
                let _ = writeln!(t, "erase counts:  not applicable (files)");
            }
        }
        let _ = writeln!(
            t,
            "frames:        {} good, {} damaged, {} stale/quarantined; {} acknowledgement marks ({} sensors with a mark)",
            tot.good_frames,
            tot.damaged_frames,
            tot.stale_frames,
            tot.ack_frames,
            marks.len()
        );
        let _ = writeln!(
            t,
            "problems:      {} ({} costing records); see --check",
            tot.problems, tot.damage
        );
        let _ = writeln!(t, "mount+walk:    {:.3} s (read-only)", ins.elapsed_mount);
        let held: u64 = sums.values().map(|s| s.held).sum();
        let acked: u64 = sums.values().map(|s| s.acked).sum();
        let _ = writeln!(
            t,
            "records:       {held} held, {acked} acknowledged, {} to deliver; {} sensors",
            held - acked,
            sums.len()
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "per source (oldest .. newest record):");
        for (src, (n, a, b)) in per_source {
            let _ = writeln!(t, "  source {src}: {n} records, {} .. {}", iso(*a), iso(*b));
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:>10} {:>4} {:>8} {:>8} {:>23} {:>24} .. {:<24} {:>5} {:>8} {:>7}",
            "sensor",
            "kind",
            "held",
            "acked",
            "seq range",
            "oldest",
            "newest",
            "gaps",
            "not held",
            "damaged"
        );
        for (k, s) in sums {
            if s.held == 0 && s.damaged == 0 {
                continue;
            }
            let range = match s.first {
                Some(f) if s.held > 0 => format!("{f}..={}", s.last),
                _ => "-".into(),
            };
            let (a, b) = if s.held > 0 {
                (iso(s.t_min), iso(s.t_max))
            } else {
                ("-".into(), "-".into())
            };
            let _ = writeln!(
                t,
                "{:>10} {:>4} {:>8} {:>8} {:>23} {:>24} .. {:<24} {:>5} {:>8} {:>7}",
                key_str(*k),
                s.kind.map_or("?", kind_str),
                s.held,
                s.acked,
                range,
                a,
                b,
                s.gaps,
                s.gap_records,
                s.damaged,
            );
        }
        let _ = writeln!(
            t,
            "(gaps / not held: holes in the held sequence numbers and the records in them: delivered from RAM before they spilled, evicted, or lost; damaged: records of damaged frames)"
        );
    }

    fn frames(&self, t: &mut String, ins: &Inspected) {
        let _ = writeln!(t);
        let _ = writeln!(t, "== frames ==");
        for i in &ins.items {
            match i {
                Item::Sector(s) => {
                    let _ = writeln!(
                        t,
                        "sector {} @0x{:08x}: {:?}{}{}{}",
                        s.index,
                        s.offset,
                        s.state,
                        s.seq.map(|q| format!(" number {q}")).unwrap_or_default(),
                        s.floor.map(|f| format!(" floor {f}")).unwrap_or_default(),
                        if s.head { " (newest)" } else { "" }
                    );
                }
                Item::File(f) => {
                    let _ = writeln!(
                        t,
                        "file {}: {} B, {}{}{}",
                        f.path.display(),
                        f.size,
                        fate_str(f.fate),
                        f.seq.map(|q| format!(", number {q}")).unwrap_or_default(),
                        f.source
                            .map(|s| format!(", source {s}"))
                            .unwrap_or_default()
                    );
                }
                Item::Frame(f) => {
                    let body = match f.body {
                        FrameBody::Batch { runs, .. } => format!("{runs} run(s)"),
                        FrameBody::Ack { key, upto } => {
                            format!("{} acknowledged before {upto}", key_str(key))
                        }
                        FrameBody::Evict { floor } => format!("floor {floor}"),
                        FrameBody::Reserve { entries } => {
                            format!("{entries} sequence-number reservation(s)")
                        }
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        t,
                        "  0x{:08x} {:>5} B {:<19} {:<7} {}{}",
                        f.offset,
                        f.len,
                        tag_str(f.tag),
                        match f.status {
                            FrameStatus::Good => "good",
                            FrameStatus::BadCrc => "BAD CRC",
                            _ => "BAD",
                        },
                        body,
                        if f.live {
                            ""
                        } else {
                            " (not read by the store)"
                        }
                    );
                }
                Item::Run(r) => {
                    let i = &r.info;
                    let _ = writeln!(
                        t,
                        "    {} {} seq {}..={} ({} records){}{}",
                        key_str(i.key),
                        kind_str(i.kind),
                        i.first_seq,
                        i.end_seq().wrapping_sub(1),
                        i.count,
                        if i.kind == RecordKind::Tsd {
                            format!(
                                ", from {} every {} ms",
                                iso(i.meta.base_time),
                                i.meta.interval
                            )
                        } else {
                            String::new()
                        },
                        if r.live { "" } else { " (not read)" }
                    );
                }
                Item::Problem(p) => {
                    let _ = writeln!(
                        t,
                        "  ! 0x{:08x} {}{}",
                        p.offset,
                        problem_str(p.kind),
                        if p.damage { " (damage)" } else { "" }
                    );
                }
                _ => {}
            }
        }
    }

    fn check(&self, t: &mut String, ins: &Inspected) -> i32 {
        let _ = writeln!(t);
        let _ = writeln!(t, "== check ==");
        let mut damage = 0;
        let mut file: Option<&Path> = None;
        let mut n = 0;
        for i in &ins.items {
            if let Item::File(f) = i {
                file = Some(&f.path);
            }
            if let Item::Problem(p) = i {
                n += 1;
                if p.damage {
                    damage += 1;
                }
                let _ = writeln!(
                    t,
                    "{} {}offset {} (0x{:x}){}: {}",
                    if p.damage { "DAMAGE" } else { "note  " },
                    file.map(|f| format!("{} ", f.display()))
                        .unwrap_or_default(),
                    p.offset,
                    p.offset,
                    if p.len > 0 {
                        format!(", {} B", p.len)
                    } else {
                        String::new()
                    },
                    problem_str(p.kind)
                );
            }
        }
        // Invariant: what the walk found live is what the library's recover reports.
        let mut walked: Vec<RunInfo> = Vec::new();
        for i in &ins.items {
            if let Item::Run(r) = i
                && r.live
            {
                walked.push(r.info);
            }
        }
        let recovered: Vec<RunInfo> = ins
            .log
            .iter()
            .filter_map(|e| match e {
                LogEntry::Run(r) => Some(*r),
                _ => None,
            })
            .collect();
        let mut a = walked.clone();
        let mut b = recovered.clone();
        let order = |x: &RunInfo| (x.key, x.first_seq, x.count);
        a.sort_by_key(order);
        b.sort_by_key(order);
        let agree = matches!(ins.media, Media::Dir) || a == b;
        if !agree {
            damage += 1;
            let _ = writeln!(
                t,
                "DAMAGE walk and mount disagree: {} live runs walked, {} runs recovered",
                a.len(),
                b.len()
            );
        }
        let _ = writeln!(
            t,
            "checked: {} frames (every CRC), {} runs; {}; mount's bad-frame counter: {}{}",
            ins.totals.good_frames + ins.totals.damaged_frames + ins.totals.stale_frames,
            walked.len(),
            match ins.media {
                Media::Flash { .. } => format!(
                    "sector headers, ring order and numbering, live runs = recovered runs ({})",
                    if agree { "yes" } else { "NO" }
                ),
                Media::Dir =>
                    "file headers, names and sources, frame CRCs seeded with each file's number"
                        .into(),
            },
            ins.stats.bad_frames,
            match ins.media {
                Media::Flash { .. } => "",
                Media::Dir =>
                    " (it also counts each file's unread tail, e.g. the zeros of a prefilled file)",
            }
        );
        let _ = writeln!(t, "check: {n} problems, {damage} damage");
        i32::from(damage > 0)
    }

    fn export(
        &mut self,
        fmt: &str,
        sums: &BTreeMap<SensorKey, SensorSum>,
        r: &mut dyn Records,
    ) -> Result<i32, String> {
        let o = self.o;
        let json = fmt == "json";
        let out = &mut self.out;
        let mut first_row = true;
        let mut err: Option<io::Error> = None;
        if json {
            let _ = out.write_all(b"[");
        } else {
            let _ = out.write_all(b"source,sensor,seq,time,value,kind\n");
        }
        let starts: Vec<(SensorKey, u32)> = sums
            .iter()
            .filter(|(key, _)| {
                o.sensor
                    .is_none_or(|(src, id)| key.id == id && src.is_none_or(|x| x == key.source))
            })
            .filter_map(|(k, s)| s.first.map(|f| (*k, f)))
            .collect();
        r.records(&starts, &mut |rec| {
            if err.is_some() {
                return;
            }
            let mark = sums.get(&rec.key).and_then(|s| s.mark);
            let acked = mark.is_some_and(|u| after(u, rec.seq));
            if (acked && !o.all)
                || o.since.is_some_and(|t| rec.time_ms < t)
                || o.until.is_some_and(|t| rec.time_ms >= t)
            {
                return;
            }
            let time = if o.time_ms {
                rec.time_ms.to_string()
            } else {
                iso(rec.time_ms)
            };
            let value = value_str(rec.value, &o.value);
            let res = if json {
                // Keys in the row's column order (serde_json's maps sort them).
                let time = if o.time_ms {
                    time
                } else {
                    serde_json::Value::from(time).to_string()
                };
                let value = if value.parse::<f64>().is_ok_and(f64::is_finite) {
                    value
                } else {
                    "null".into()
                };
                let sep = if first_row { "\n" } else { ",\n" };
                write!(
                    out,
                    "{sep}{{\"source\":{},\"sensor\":{},\"seq\":{},\"time\":{time},\"value\":{value},\"kind\":\"{}\"}}",
                    rec.key.source,
                    rec.key.id,
                    rec.seq,
                    kind_str(rec.kind)
                )
            } else {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    rec.key.source,
                    rec.key.id,
                    rec.seq,
                    time,
                    value,
                    kind_str(rec.kind)
                )
            };
            first_row = false;
            if let Err(e) = res {
                err = Some(e);
            }
        })?;
        if json {
            let _ = out.write_all(b"\n]\n");
        }
        if let Some(e) = err {
            return Err(e.to_string());
        }
        out.flush().map_err(|e| e.to_string())?;
        Ok(0)
    }
}

fn main() {
    let m = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let o = match opts(&m) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spool-inspect: {e}");
            std::process::exit(2);
        }
    };
    let stdout = io::stdout();
    let mut rep = Report {
        o: &o,
        out: Box::new(io::BufWriter::new(stdout.lock())),
    };
    let mut report = |ins: Inspected, r: &mut dyn Records| rep.run(ins, r);
    let res = if o.input.is_dir() {
        run_dir(&o, &mut report)
    } else {
        run_flash(&o, &mut report)
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("spool-inspect: {e}");
            std::process::exit(2);
        }
    }
}
