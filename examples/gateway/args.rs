//! Command-line flags of the gateway example (hand-rolled: a dozen flags do not
//! justify a parser dependency in the library's dev-dependencies).

use std::path::PathBuf;

/// Where RAM spills to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// Simulated NOR flash through `NorFlashStorage`.
    Flash,
    /// `FileStorage` in a directory.
    Files,
    /// No storage: RAM only, oldest unsent data dropped on overflow.
    Ram,
}

/// When `--power-cut-every` cuts power.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CutEvery {
    /// Every this many ms of vehicle time.
    Ms(u64),
    /// Every this many samples written.
    Records(u64),
}

/// All settings.
#[derive(Clone, Debug)]
pub struct Args {
    /// Wall-clock budget in seconds.
    pub duration_s: f64,
    /// Fixed vehicle time to simulate instead of a wall-clock budget.
    pub vehicle_hours: Option<f64>,
    /// Host sensors (TSD, 1 Hz).
    pub host_sensors: u32,
    /// CAN signals (TSD, 10 Hz).
    pub can_signals: u32,
    /// GPS-tagged event sensors.
    pub events: u32,
    /// Storage kind.
    pub storage: StorageKind,
    /// Directory for `--storage files`.
    pub dir: Option<PathBuf>,
    /// Probability that an upload fails (half NACK, half timeout).
    pub fault_rate: f64,
    /// RNG seed.
    pub seed: u64,
    /// Upload payload size in bytes.
    pub packet_bytes: u32,
    /// Storage size in KiB (flash partition, or the file store's disk limit).
    pub storage_kib: u32,
    /// Live status line on/off.
    pub quiet: bool,
    /// Skip the shutdown flush + power cycle before the drain.
    pub no_power_cycle: bool,
    /// Where to write the flash image (or copy the spool directory) at the end.
    pub save_image: Option<PathBuf>,
    /// Durability window (`Spool::set_max_unspilled_ms`), 0 = off.
    pub max_unspilled_ms: u32,
    /// Sudden power cuts (no shutdown flush) while driving.
    pub power_cut_every: Option<CutEvery>,
    /// The link never goes down (the uploader keeps up).
    pub always_online: bool,
}

pub const HELP: &str = "\
gateway: a simulated vehicle gateway running the sensor-spool library the way firmware does

USAGE:
    cargo run --release --example gateway -- [FLAGS]

Sensors sample on simulated time (not wall-clock sleeps), so a 30 s run covers hours of
vehicle time. Every sample goes through Spool::write; the uploader drives the legacy
transaction (per sensor read up to min(fit, available) records -> pending, then ack(n) on
ACK or revert on NACK/timeout). When RAM passes the flush threshold the oldest records
spill to storage. At the end the link comes back, everything is drained, and a ledger kept
outside the library proves every sample was delivered exactly once and in order, or is
counted by the library as rejected, dropped or evicted. Exit code 1 if the proof fails.

FLAGS:
    --duration SECS      wall-clock budget for the driving phase [default: 30]
    --vehicle-hours H    simulate exactly H hours of vehicle time instead (reproducible
                         with --seed; --duration is then ignored)
    --host-sensors N     host sensors, TSD at 1 Hz [default: 16]
    --can-signals N      decoded CAN signals, TSD at 10 Hz [default: 300]
    --events N           GPS-tagged event sensors (EVT); each event also writes GPS
                         latitude, longitude and speed with the same timestamp [default: 4]
    --storage KIND       flash | files | ram [default: flash]
                           flash: NorFlashStorage on a simulated 4 KiB-sector NOR part
                           files: FileStorage in --dir (a temporary directory if not given)
                           ram:   no storage; RAM overflow drops the oldest unsent data
    --dir PATH           directory for --storage files (created; left in place)
    --storage-kib N      flash partition size, or the file store's disk limit [default: 4096]
    --fault-rate F       probability that an upload fails, half NACK, half timeout (30 s)
                         [default: 0.05]
    --packet-bytes N     upload payload size [default: 32768]
    --seed N             random seed (link outages, faults, events) [default: 1]
    --no-power-cycle     skip the ignition-off shutdown flush, power cut and recovery
                         that run before the final drain (flash and files)
    --max-unspilled-ms MS
                         durability window: a record stays in RAM only at most MS ms
                         of vehicle time (Spool::tick every 100 ms), then everything in
                         RAM spills to storage; 0 = off, records then reach storage only
                         at the flush threshold [default: 0]
    --power-cut-every X  cut power while driving, without the shutdown flush, every X:
                         a duration of vehicle time (500ms, 30s, 10m, 2h) or a number
                         of samples written (50000, 50000rec); each cut loses RAM,
                         the spool recovers from storage and driving goes on. The proof
                         then also checks that every record lost in a cut was written
                         inside the window of the last tick before it (exit 1 if not)
                         and the report gives the flash cost (wear) of the window
    --always-online      the link never goes down: the uploader keeps up and RAM stays
                         below the flush threshold (upload faults still happen)
    --save-image PATH    at the end, write the flash image to PATH (flash), or copy the
                         spool directory to the directory PATH (files), for spool-inspect
    --quiet              no live status line
    -h, --help           this text
";

impl Default for Args {
    fn default() -> Self {
        Self {
            duration_s: 30.0,
            vehicle_hours: None,
            host_sensors: 16,
            can_signals: 300,
            events: 4,
            storage: StorageKind::Flash,
            dir: None,
            fault_rate: 0.05,
            seed: 1,
            packet_bytes: 32 * 1024,
            storage_kib: 4096,
            quiet: false,
            no_power_cycle: false,
            save_image: None,
            max_unspilled_ms: 0,
            power_cut_every: None,
            always_online: false,
        }
    }
}

/// `500ms`, `30s`, `10m`, `2h` (vehicle time) or `50000` / `50000rec` (samples).
fn parse_cut(v: &str) -> Option<CutEvery> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok().filter(|&n| n > 0)?;
    Some(match unit.trim() {
        "" | "rec" | "records" => CutEvery::Records(n),
        "ms" => CutEvery::Ms(n),
        "s" => CutEvery::Ms(n * 1000),
        "m" | "min" => CutEvery::Ms(n * 60_000),
        "h" => CutEvery::Ms(n * 3_600_000),
        _ => return None,
    })
}

/// Parses `std::env::args()`. `Err(msg)` for bad input; `Ok(None)` for `--help`.
pub fn parse() -> Result<Option<Args>, String> {
    parse_from(std::env::args().skip(1))
}

fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag}: cannot parse '{v}' as a number"))
}

/// Parses the given arguments (without the program name).
pub fn parse_from(it: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    let mut it = it.into_iter();
    while let Some(flag) = it.next() {
        // Accept --flag=value too.
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        let mut val = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--duration" => a.duration_s = num(&flag, val())?,
            "--vehicle-hours" => a.vehicle_hours = Some(num(&flag, val())?),
            "--host-sensors" => a.host_sensors = num(&flag, val())?,
            "--can-signals" => a.can_signals = num(&flag, val())?,
            "--events" => a.events = num(&flag, val())?,
            "--storage" => {
                a.storage = match val().as_deref() {
                    Some("flash") => StorageKind::Flash,
                    Some("files") => StorageKind::Files,
                    Some("ram") => StorageKind::Ram,
                    other => {
                        return Err(format!(
                            "--storage: expected flash, files or ram, got {other:?}"
                        ));
                    }
                }
            }
            "--dir" => a.dir = Some(PathBuf::from(val().ok_or("--dir needs a value")?)),
            "--storage-kib" => a.storage_kib = num(&flag, val())?,
            "--fault-rate" => a.fault_rate = num(&flag, val())?,
            "--packet-bytes" => a.packet_bytes = num(&flag, val())?,
            "--seed" => a.seed = num(&flag, val())?,
            "--save-image" => {
                a.save_image = Some(PathBuf::from(val().ok_or("--save-image needs a value")?))
            }
            "--quiet" => a.quiet = true,
            "--always-online" => a.always_online = true,
            "--max-unspilled-ms" => a.max_unspilled_ms = num(&flag, val())?,
            "--power-cut-every" => {
                let v = val().ok_or("--power-cut-every needs a value")?;
                a.power_cut_every = Some(
                    parse_cut(&v).ok_or_else(|| {
                        format!("--power-cut-every: expected a duration (500ms, 30s, 10m, 2h) or a number of samples (50000), got '{v}'")
                    })?,
                );
            }
            "--no-power-cycle" => a.no_power_cycle = true,
            other => return Err(format!("unknown flag '{other}' (see --help)")),
        }
    }
    if !(0.0..=1.0).contains(&a.fault_rate) {
        return Err("--fault-rate must be within 0..=1".into());
    }
    if a.duration_s.is_nan() || a.duration_s <= 0.0 {
        return Err("--duration must be > 0".into());
    }
    if a.vehicle_hours.is_some_and(|h| h.is_nan() || h <= 0.0) {
        return Err("--vehicle-hours must be > 0".into());
    }
    if a.packet_bytes < 64 {
        return Err("--packet-bytes must be at least 64".into());
    }
    if a.storage_kib < 64 {
        return Err("--storage-kib must be at least 64".into());
    }
    if a.save_image.is_some() && a.storage == StorageKind::Ram {
        return Err("--save-image needs --storage flash or files".into());
    }
    if a.dir.is_some() && a.storage != StorageKind::Files {
        return Err("--dir only applies to --storage files".into());
    }
    if a.power_cut_every.is_some() && a.storage == StorageKind::Ram {
        return Err("--power-cut-every needs --storage flash or files".into());
    }
    Ok(Some(a))
}
