//! Configuration file of the Linux daemon (feature `config`), TOML:
//!
//! ```toml
//! # where the spool directory lives (required)
//! directory = "/usr/qk/etc/sv/FC-1/history"
//! # flush RAM to disk when this share of the RAM pool is in use (1..=100, default 80)
//! ram_threshold_percent = 80
//! # durability window: records held in RAM only longer than this (ms of the
//! # main loop's clock) go to disk even below the threshold, so a power cut
//! # without the shutdown flush loses at most this much (0 = off, the default;
//! # see `Spool::set_max_unspilled_ms`)
//! max_unspilled_ms = 10000
//! # total of all spool files (default "256 MiB"; at least two files)
//! disk_limit = "256 MiB"
//! # largest spool file (default "64 KiB"; 256 B ..= 16 MiB)
//! file_size = "64 KiB"
//! # free space the spool leaves on the filesystem (default "16 MiB")
//! free_space_reserve = "16 MiB"
//! # make spare files ahead on a helper thread (default true)
//! background_spares = true
//! ```
//!
//! Sizes are integers (bytes) or strings: a whole number, optional spaces and a
//! unit: `B`; `K`, `KiB`, `M`, `MiB`, `G`, `GiB` (powers of 1024); `kB`/`KB`,
//! `MB`, `GB` (powers of 1000). Unknown keys, wrong types, out-of-range values
//! and malformed sizes are rejected with a [`ConfigError`] that names the key.

use super::{FileConfig, MAX_FILE_SIZE, MIN_FILE_SIZE};
use std::fmt;
use std::path::{Path, PathBuf};

/// Default RAM threshold (percent of the RAM pool in use that triggers a flush).
pub const DEFAULT_RAM_THRESHOLD_PERCENT: u8 = 80;
/// Largest accepted `disk_limit` and `free_space_reserve` (1 TiB).
pub const MAX_BYTES: u64 = 1 << 40;

/// The keys a configuration file may contain.
pub const KEYS: [&str; 7] = [
    "directory",
    "ram_threshold_percent",
    "max_unspilled_ms",
    "disk_limit",
    "file_size",
    "free_space_reserve",
    "background_spares",
];

/// Settings of the Linux daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Flush RAM to disk when this share (percent) of the RAM pool is in use.
    pub ram_threshold_percent: u8,
    /// Durability window in ms, 0 = off (for `Spool::set_max_unspilled_ms`).
    pub max_unspilled_ms: u32,
    /// File storage settings (directory, file size, disk limit, reserve).
    pub storage: FileConfig,
}

/// Why a configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// Path of the file.
        path: PathBuf,
        /// The OS error.
        error: String,
    },
    /// Not valid TOML (the message carries line and column).
    Syntax(String),
    /// A key that is not one of [`KEYS`].
    UnknownKey(String),
    /// A required key is missing.
    Missing(&'static str),
    /// A key has the wrong type (e.g. a table, or a string where a number belongs).
    Type {
        /// The key.
        key: &'static str,
        /// What the key takes.
        expected: &'static str,
    },
    /// A size string that does not parse.
    BadSize {
        /// The key.
        key: &'static str,
        /// The text given.
        text: String,
    },
    /// A value outside its range.
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value given (bytes or percent).
        value: i128,
        /// Allowed range, for the message.
        allowed: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            ConfigError::Syntax(m) => write!(f, "invalid TOML: {m}"),
            ConfigError::UnknownKey(k) => {
                write!(f, "unknown key `{k}` (known keys: {})", KEYS.join(", "))
            }
            ConfigError::Missing(k) => write!(f, "missing required key `{k}`"),
            ConfigError::Type { key, expected } => write!(f, "`{key}` must be {expected}"),
            ConfigError::BadSize { key, text } => write!(
                f,
                "`{key}`: cannot read size {text:?} (examples: 65536, \"64 KiB\", \"256MiB\", \"1 GB\")"
            ),
            ConfigError::OutOfRange {
                key,
                value,
                allowed,
            } => write!(f, "`{key}` = {value} is out of range ({allowed})"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a size: an integer (bytes) or a string such as `"64 KiB"`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn size_of_value(key: &'static str, v: &toml::Value) -> Result<u64, ConfigError> {
    match v {
        toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| ConfigError::OutOfRange {
            key,
            value: *i as i128,
            allowed: "a size cannot be negative".into(),
        }),
        toml::Value::String(s) => parse_size(s).ok_or_else(|| ConfigError::BadSize {
            key,
            text: s.clone(),
        }),
        _ => Err(ConfigError::Type {
            key,
            expected: "a size: an integer number of bytes or a string like \"64 KiB\"",
        }),
    }
}

fn range(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::OutOfRange {
            key,
            value: v as i128,
            allowed: format!("{lo} ..= {hi} bytes"),
        })
    }
}

impl DaemonConfig {
    /// Parses a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string().trim().into()))?;
        if let Some(k) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey(k.clone()));
        }
        let directory = match table.get("directory") {
            None => return Err(ConfigError::Missing("directory")),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => PathBuf::from(s),
            Some(_) => {
                return Err(ConfigError::Type {
                    key: "directory",
                    expected: "a non-empty string (path of the spool directory)",
                });
            }
        };
        let ram_threshold_percent = match table.get("ram_threshold_percent") {
            None => DEFAULT_RAM_THRESHOLD_PERCENT,
            Some(toml::Value::Integer(p)) if (1..=100).contains(p) => *p as u8,
            Some(toml::Value::Integer(p)) => {
                return Err(ConfigError::OutOfRange {
                    key: "ram_threshold_percent",
                    value: *p as i128,
                    allowed: "1 ..= 100 percent".into(),
                });
            }
            Some(_) => {
                return Err(ConfigError::Type {
                    key: "ram_threshold_percent",
                    expected: "an integer percentage (1 ..= 100)",
                });
            }
        };
        let max_unspilled_ms = match table.get("max_unspilled_ms") {
            None => 0,
            Some(toml::Value::Integer(ms)) if (0..=i64::from(u32::MAX)).contains(ms) => *ms as u32,
            Some(toml::Value::Integer(ms)) => {
                return Err(ConfigError::OutOfRange {
                    key: "max_unspilled_ms",
                    value: *ms as i128,
                    allowed: "0 (off) ..= 4294967295 ms".into(),
                });
            }
            Some(_) => {
                return Err(ConfigError::Type {
                    key: "max_unspilled_ms",
                    expected: "an integer number of milliseconds (0 = off)",
                });
            }
        };
        let mut storage = FileConfig::new(directory);
        if let Some(v) = table.get("file_size") {
            let n = size_of_value("file_size", v)?;
            storage.file_size =
                range("file_size", n, MIN_FILE_SIZE as u64, MAX_FILE_SIZE as u64)? as u32;
        }
        if let Some(v) = table.get("disk_limit") {
            let n = size_of_value("disk_limit", v)?;
            storage.disk_limit = range("disk_limit", n, 2 * storage.file_size as u64, MAX_BYTES)?;
        }
        if let Some(v) = table.get("free_space_reserve") {
            let n = size_of_value("free_space_reserve", v)?;
            storage.free_space_reserve = range("free_space_reserve", n, 0, MAX_BYTES)?;
        }
        match table.get("background_spares") {
            None => {}
            Some(toml::Value::Boolean(b)) => storage.background_spares = *b,
            Some(_) => {
                return Err(ConfigError::Type {
                    key: "background_spares",
                    expected: "true or false",
                });
            }
        }
        Ok(Self {
            ram_threshold_percent,
            max_unspilled_ms,
            storage,
        })
    }

    /// Reads and parses a configuration file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
        Self::from_toml_str(&text)
    }
}
