//! The daemon configuration file: defaults, every key, and a clear error for
//! each kind of bad value.
#![cfg(feature = "config")]

use sensor_spool::storage::file::config::{ConfigError, DaemonConfig, parse_size};
use std::path::PathBuf;

fn err(text: &str) -> ConfigError {
    DaemonConfig::from_toml_str(text).unwrap_err()
}

#[test]
fn defaults_and_full_file() {
    let c = DaemonConfig::from_toml_str("directory = \"/var/spool\"\n").unwrap();
    assert_eq!(c.ram_threshold_percent, 80);
    assert_eq!(c.max_unspilled_ms, 0, "durability window off by default");
    assert_eq!(c.storage.root, PathBuf::from("/var/spool"));
    assert_eq!(c.storage.file_size, 64 * 1024);
    assert_eq!(c.storage.disk_limit, 256 << 20);
    assert_eq!(c.storage.free_space_reserve, 16 << 20);
    assert!(c.storage.background_spares);
    let c = DaemonConfig::from_toml_str(
        r#"
        # gateway
        directory = "/usr/qk/etc/sv/FC-1/history"
        ram_threshold_percent = 75
        max_unspilled_ms = 10000
        disk_limit = "128 MiB"
        file_size = 32768
        free_space_reserve = "100MB"
        background_spares = false
        "#,
    )
    .unwrap();
    assert_eq!(c.ram_threshold_percent, 75);
    assert_eq!(c.max_unspilled_ms, 10_000);
    let d = "directory = \"/d\"\n";
    assert!(matches!(
        err(&format!("{d}max_unspilled_ms = -1")),
        ConfigError::OutOfRange {
            key: "max_unspilled_ms",
            ..
        }
    ));
    assert!(matches!(
        err(&format!("{d}max_unspilled_ms = \"10 s\"")),
        ConfigError::Type {
            key: "max_unspilled_ms",
            ..
        }
    ));
    assert_eq!(c.storage.disk_limit, 128 << 20);
    assert_eq!(c.storage.file_size, 32768);
    assert_eq!(c.storage.free_space_reserve, 100_000_000);
    assert!(!c.storage.background_spares);
    c.storage.validate().unwrap();
}

#[test]
fn sizes() {
    let cases = [
        ("0", Some(0)),
        ("65536", Some(65536)),
        ("64 KiB", Some(65536)),
        ("64KiB", Some(65536)),
        ("64K", Some(65536)),
        ("2 MiB", Some(2 << 20)),
        ("1G", Some(1 << 30)),
        ("3 kB", Some(3000)),
        ("5MB", Some(5_000_000)),
        ("1 GB", Some(1_000_000_000)),
        (" 7 B ", Some(7)),
        ("", None),
        ("KiB", None),
        ("1.5 MiB", None),
        ("-1", None),
        ("12 parsecs", None),
        ("99999999999999999999", None),
        ("18446744073709551615 GiB", None),
    ];
    for (t, want) in cases {
        assert_eq!(parse_size(t), want, "{t:?}");
    }
    eprintln!("config sizes: {} cases", cases.len());
}

#[test]
fn each_bad_value_has_a_clear_error() {
    let d = "directory = \"/s\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "ram_threshold_percent = 80\n".into(),
            "missing required key `directory`",
        ),
        (format!("{d}colour = \"blue\"\n"), "unknown key `colour`"),
        (
            format!("{d}[storage]\nfile_size = 1\n"),
            "unknown key `storage`",
        ),
        ("directory = \"\"\n".into(), "`directory` must be"),
        ("directory = 5\n".into(), "`directory` must be"),
        (
            format!("{d}ram_threshold_percent = 0\n"),
            "`ram_threshold_percent` = 0 is out of range (1 ..= 100 percent)",
        ),
        (
            format!("{d}ram_threshold_percent = 101\n"),
            "= 101 is out of range",
        ),
        (
            format!("{d}ram_threshold_percent = -5\n"),
            "= -5 is out of range",
        ),
        (
            format!("{d}ram_threshold_percent = \"80%\"\n"),
            "`ram_threshold_percent` must be an integer",
        ),
        (
            format!("{d}ram_threshold_percent = 80.5\n"),
            "`ram_threshold_percent` must be an integer",
        ),
        (
            format!("{d}file_size = \"64 KB/s\"\n"),
            "`file_size`: cannot read size \"64 KB/s\"",
        ),
        (
            format!("{d}file_size = 100\n"),
            "`file_size` = 100 is out of range (256 ..= 16777216 bytes)",
        ),
        (
            format!("{d}file_size = \"1 GiB\"\n"),
            "`file_size` = 1073741824 is out of range",
        ),
        (
            format!("{d}file_size = -4096\n"),
            "`file_size` = -4096 is out of range",
        ),
        (
            format!("{d}file_size = true\n"),
            "`file_size` must be a size",
        ),
        (
            format!("{d}disk_limit = \"64 KiB\"\n"),
            "`disk_limit` = 65536 is out of range (131072 ..= ",
        ),
        (
            format!("{d}disk_limit = \"2048 GiB\"\n"),
            "`disk_limit` = 2199023255552 is out of range",
        ),
        (
            format!("{d}free_space_reserve = \"2 TB\"\n"),
            "cannot read size \"2 TB\"",
        ),
        (
            format!("{d}free_space_reserve = \"4096 GiB\"\n"),
            "`free_space_reserve` = 4398046511104 is out of range",
        ),
        (
            format!("{d}file_size = \"16 MiB\"\ndisk_limit = \"20 MiB\"\n"),
            "`disk_limit` = 20971520 is out of range (33554432 ..= ",
        ),
        (
            format!("{d}background_spares = \"yes\"\n"),
            "`background_spares` must be true or false",
        ),
        (format!("{d}directory = \"/t\"\n"), "invalid TOML"),
        ("directory = \"/s\n".into(), "invalid TOML"),
    ];
    for (text, want) in &cases {
        let e = err(text).to_string();
        assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
    }
    // A bigger limit makes the large file size valid.
    let c = DaemonConfig::from_toml_str(&format!(
        "{d}file_size = \"16 MiB\"\ndisk_limit = \"1 GiB\"\n"
    ))
    .unwrap();
    assert_eq!(c.storage.file_size, 16 << 20);
    eprintln!("config errors: {} cases", cases.len());
}

#[test]
fn from_path_reports_missing_file() {
    let p = std::env::temp_dir().join(format!("sensor-spool-no-such-{}.toml", std::process::id()));
    let e = DaemonConfig::from_path(&p).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("cannot read"));
    let p = std::env::temp_dir().join(format!("sensor-spool-cfg-{}.toml", std::process::id()));
    std::fs::write(&p, "directory = \"/x\"\nfile_size = \"8 KiB\"\n").unwrap();
    let c = DaemonConfig::from_path(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(c.storage.file_size, 8192);
}
