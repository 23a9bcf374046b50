//! The committed header against the Rust side: version macros match Cargo.toml, every
//! status code and constant has the value the Rust code uses, every exported function is
//! declared, and the header defines none of the firmware's structs.
#![cfg(feature = "ffi")]

use sensor_spool::ffi::*;

fn header() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/sensor_spool.h"
    ))
    .expect("include/sensor_spool.h")
}

/// The value of `#define NAME value`, or of an enumerator `NAME = value,`.
fn value_of(h: &str, name: &str) -> Option<String> {
    h.lines().find_map(|l| {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("#define ") {
            let mut it = rest.split_whitespace();
            (it.next() == Some(name)).then(|| it.collect::<Vec<_>>().join(" "))
        } else {
            let rest = l.strip_prefix(name)?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_end_matches(',').to_string())
        }
    })
}

#[test]
#[cfg_attr(miri, ignore = "text checks only, no unsafe code")]
fn version_macros_match_cargo_toml() {
    let h = header();
    for (name, want) in [
        ("SPOOL_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("SPOOL_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("SPOOL_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert_eq!(value_of(&h, name).as_deref(), Some(want), "{name}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "text checks only, no unsafe code")]
fn status_codes_and_constants_match() {
    use SpoolStatus::*;
    let h = header();
    let statuses = [
        ("SPOOL_OK", SPOOL_OK),
        ("SPOOL_ERR_NULL", SPOOL_ERR_NULL),
        ("SPOOL_ERR_NOT_INITIALIZED", SPOOL_ERR_NOT_INITIALIZED),
        (
            "SPOOL_ERR_ALREADY_INITIALIZED",
            SPOOL_ERR_ALREADY_INITIALIZED,
        ),
        ("SPOOL_ERR_INVALID_ARGUMENT", SPOOL_ERR_INVALID_ARGUMENT),
        ("SPOOL_ERR_BAD_LAYOUT", SPOOL_ERR_BAD_LAYOUT),
        ("SPOOL_ERR_NOT_REGISTERED", SPOOL_ERR_NOT_REGISTERED),
        ("SPOOL_ERR_INDEX", SPOOL_ERR_INDEX),
        ("SPOOL_ERR_REGISTRY_FULL", SPOOL_ERR_REGISTRY_FULL),
        ("SPOOL_ERR_OVERLAP", SPOOL_ERR_OVERLAP),
        ("SPOOL_ERR_NO_DATA", SPOOL_ERR_NO_DATA),
        ("SPOOL_ERR_UNKNOWN_SENSOR", SPOOL_ERR_UNKNOWN_SENSOR),
        ("SPOOL_ERR_TABLE_FULL", SPOOL_ERR_TABLE_FULL),
        ("SPOOL_ERR_ACK_TOO_MANY", SPOOL_ERR_ACK_TOO_MANY),
        ("SPOOL_ERR_FULL", SPOOL_ERR_FULL),
        ("SPOOL_ERR_EXHAUSTED", SPOOL_ERR_EXHAUSTED),
        ("SPOOL_ERR_TOO_LARGE", SPOOL_ERR_TOO_LARGE),
        ("SPOOL_ERR_FOREIGN_PTR", SPOOL_ERR_FOREIGN_PTR),
        ("SPOOL_ERR_DOUBLE_FREE", SPOOL_ERR_DOUBLE_FREE),
        ("SPOOL_ERR_CORRUPTED", SPOOL_ERR_CORRUPTED),
        ("SPOOL_ERR_STORAGE", SPOOL_ERR_STORAGE),
        ("SPOOL_ERR_BUSY", SPOOL_ERR_BUSY),
        ("SPOOL_ERR_CONFLICT", SPOOL_ERR_CONFLICT),
        ("SPOOL_ERR_INTERNAL", SPOOL_ERR_INTERNAL),
        ("SPOOL_ERR_BAD_GEOMETRY", SPOOL_ERR_BAD_GEOMETRY),
        ("SPOOL_ERR_SOURCE_MISMATCH", SPOOL_ERR_SOURCE_MISMATCH),
    ];
    for (i, (name, s)) in statuses.iter().enumerate() {
        assert_eq!(*s as i32, i as i32, "{name}: values are dense and fixed");
        assert_eq!(value_of(&h, name), Some((*s as i32).to_string()), "{name}");
    }
    for (name, v) in [
        (
            "SPOOL_CFG_EVT_READ_TWO_WORDS",
            SPOOL_CFG_EVT_READ_TWO_WORDS.to_string(),
        ),
        (
            "SPOOL_CFG_EVT_READ_ONE_WORD",
            SPOOL_CFG_EVT_READ_ONE_WORD.to_string(),
        ),
        ("SPOOL_POOL_TIERS", SPOOL_POOL_TIERS.to_string()),
        ("SPOOL_ABI_VERSION", SPOOL_ABI_VERSION.to_string()),
        ("SPOOL_KIND_TSD", SPOOL_KIND_TSD.to_string()),
        ("SPOOL_KIND_EVT", SPOOL_KIND_EVT.to_string()),
        ("SPOOL_FIELD_ABSENT", "UINT32_MAX".into()),
        ("SPOOL_ID_NONE", "UINT32_MAX".into()),
    ] {
        assert_eq!(value_of(&h, name), Some(v), "{name}");
    }
    assert_eq!((SPOOL_FIELD_ABSENT, SPOOL_ID_NONE), (u32::MAX, u32::MAX));
}

#[test]
#[cfg_attr(miri, ignore = "text checks only, no unsafe code")]
fn legacy_prototypes_and_no_firmware_struct_definitions() {
    let h = header();
    let flat = h.split_whitespace().collect::<Vec<_>>().join(" ");
    for proto in [
        "void write_tsd_evt(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t entry, uint32_t value, bool add_gps_location);",
        "void write_tsd_evt_time(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t entry, uint32_t value, uint32_t utc_time);",
        "void read_tsd_evt(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t entry, uint32_t *value);",
        "void erase_tsd_evt(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t entry);",
        "void revert_tsd_evt_pending_data(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t no_items);",
        "void erase_tsd_evt_pending_data(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t no_items);",
        "spool_status_t atomic_erase_records(struct control_sensor_block *csb, struct control_sensor_data *csd, uint16_t entry, uint16_t count);",
        "void process_memory(uint32_t current_time);",
        "void flush_all_to_disk(void);",
        "uint8_t get_flush_progress(void);",
        "bool is_all_ram_empty(void);",
        "void cancel_memory_flush(void);",
        "void imx_init_data_store_entry(struct _data_store_info *ds);",
        "void reset_csd_entry(struct control_sensor_data *csd, uint16_t entry);",
    ] {
        assert!(
            flat.contains(proto),
            "missing or changed prototype: {proto}"
        );
    }
    for tag in [
        "control_sensor_block",
        "control_sensor_data",
        "_data_store_info",
    ] {
        assert!(
            flat.contains(&format!("struct {tag};")),
            "forward declaration of {tag}"
        );
        assert!(
            !flat.contains(&format!("struct {tag} {{")),
            "{tag} must not be defined"
        );
    }
}
