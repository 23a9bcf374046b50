/*
 * A NOR flash part simulated in RAM, inside the firmware: 16 KiB, 4 KiB erase sectors,
 * 4-byte program unit. The callbacks keep NOR rules (program only clears bits, erase sets a
 * whole sector to 0xFF) and count every violation, so the library's NorFlashStorage is
 * checked against them on target. RAM survives spool_deinit + spool_init, which is how
 * these tests power-cycle the store: everything the library held in RAM is gone, the
 * region is not.
 *
 * Tests: the threshold spill (process_memory moves RAM sectors to flash exactly when the
 * configured share of RAM is in use), the shutdown flush polled to 101, and recovery after a
 * power cycle delivering exactly the records that were not acknowledged, in order.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flash.h"
#include "harness.h"

#define FIRMWARE_FLASH_WRITE 4u
#define FIRMWARE_FLASH_ERASE SPOOL_FLASH_SECTOR_SIZE

static uint8_t flash_mem[FIRMWARE_FLASH_SIZE] __attribute__((aligned(4)));

/* Operation counters and NOR-rule violations (any violation fails the tests). */
static struct {
    uint32_t reads, programs, erases;
    uint32_t bad_range, bad_align, bits_set; /* bits_set: a program that would turn 0 into 1 */
} fl;

static int in_range(uint32_t off, uint32_t len) { return off <= FIRMWARE_FLASH_SIZE && len <= FIRMWARE_FLASH_SIZE - off; }

static int fl_read(void *ctx, uint32_t off, uint8_t *buf, uint32_t len) {
    (void)ctx;
    fl.reads++;
    if (!in_range(off, len)) {
        fl.bad_range++;
        return -1;
    }
    memcpy(buf, &flash_mem[off], len);
    return 0;
}

static int fl_program(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len) {
    uint32_t i;
    (void)ctx;
    fl.programs++;
    if (!in_range(off, len)) {
        fl.bad_range++;
        return -1;
    }
    if (off % FIRMWARE_FLASH_WRITE != 0 || len % FIRMWARE_FLASH_WRITE != 0) {
        fl.bad_align++;
        return -1;
    }
    for (i = 0; i < len; i++) {
        if ((uint8_t)(flash_mem[off + i] & buf[i]) != buf[i]) fl.bits_set++;
        flash_mem[off + i] &= buf[i];
    }
    return 0;
}

static int fl_erase(void *ctx, uint32_t off, uint32_t len) {
    (void)ctx;
    fl.erases++;
    if (!in_range(off, len)) {
        fl.bad_range++;
        return -1;
    }
    if (off % FIRMWARE_FLASH_ERASE != 0 || len != FIRMWARE_FLASH_ERASE) {
        fl.bad_align++;
        return -1;
    }
    memset(&flash_mem[off], 0xFF, len);
    return 0;
}

void fw_flash_format(void) {
    memset(flash_mem, 0xFF, sizeof flash_mem);
    memset(&fl, 0, sizeof fl);
}

/* The call-site suite (tests/c/callsites.c) boots on this region too. */
spool_flash_t callsite_flash(void) {
    spool_flash_t f;
    memset(&f, 0, sizeof f);
    f.read = fl_read;
    f.program = fl_program;
    f.erase = fl_erase;
    f.ctx = NULL;
    f.size = FIRMWARE_FLASH_SIZE;
    f.write_size = FIRMWARE_FLASH_WRITE;
    f.erase_size = FIRMWARE_FLASH_ERASE;
    return f;
}

void callsite_flash_wipe(void) { fw_flash_format(); }

static uint32_t flash_utc_now(void) { return g_utc_now; }

spool_status_t fw_boot_flash(uint32_t threshold_pct) {
    spool_config_t cfg;
    spool_layout_t l;
    spool_status_t s;
    /* fw_boot sets up the firmware's sensor tables (and boots RAM only); then the store is
     * restarted on the flash region, as a firmware with a flash partition boots */
    if ((s = fw_boot(0)) != SPOOL_OK) return s;
    spool_deinit();
    memset(host_csd, 0, sizeof host_csd);
    memset(can_csd, 0, sizeof can_csd);
    l = fw_layout();
    if ((s = spool_config_default(&cfg)) != SPOOL_OK) return s;
    cfg.utc_now = flash_utc_now;
    cfg.flash.read = fl_read;
    cfg.flash.program = fl_program;
    cfg.flash.erase = fl_erase;
    cfg.flash.ctx = NULL;
    cfg.flash.size = FIRMWARE_FLASH_SIZE;
    cfg.flash.write_size = FIRMWARE_FLASH_WRITE;
    cfg.flash.erase_size = FIRMWARE_FLASH_ERASE;
    cfg.flush_threshold_pct = threshold_pct;
    if ((s = spool_init(&cfg)) != SPOOL_OK) return s;
    if ((s = spool_register_sensors(host_csb, host_csd, NO_HOST, &l, SOURCE_GATEWAY)) != SPOOL_OK) return s;
    return spool_register_sensors(can_csb, can_csd, NO_CAN, &l, SOURCE_CAN);
}

static void check_nor_rules(void) {
    CHECK_EQ(fl.bad_range, 0);
    CHECK_EQ(fl.bad_align, 0);
    CHECK_EQ(fl.bits_set, 0);
}

static void check_balance(void) {
    spool_stats_t st;
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK_EQ(st.store.written, st.store.acked + st.store.stored + st.store.dropped);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* Reads `n` TSD records of `entry` through the legacy API and checks they are first..first+n-1. */
static void read_tsd_run(uint16_t entry, uint32_t first, uint32_t n) {
    uint32_t i, v, wrong = 0;
    for (i = 0; i < n; i++) {
        v = 0;
        read_tsd_evt(host_csb, host_csd, entry, &v);
        if (v != first + i) {
            if (wrong == 0) printf("  record %lu: got %lu, want %lu\n", (unsigned long)i, (unsigned long)v,
                                   (unsigned long)(first + i));
            wrong++;
        }
    }
    CHECK_EQ(wrong, 0);
}

/* ---- threshold spill ---------------------------------------------------------------------- */

void test_flash_spill_at_threshold(void) {
    spool_stats_t st;
    spool_storage_stats_t ss;
    uint32_t i, threshold_sectors, per_sector = 8u; /* TSD records per 32-byte RAM sector */
    fw_flash_format();
    CHECK_EQ(fw_boot_flash(10), SPOOL_OK);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.kind, SPOOL_STORAGE_FLASH);
    CHECK_EQ(ss.sectors, FIRMWARE_FLASH_SIZE / SPOOL_FLASH_SECTOR_SIZE);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    /* the first sector count at or above 10 % of the RAM sectors */
    threshold_sectors = (st.store.sectors_total * 10u + 99u) / 100u;
    /* one sector below the threshold: process_memory leaves RAM alone */
    for (i = 1; i <= (threshold_sectors - 1u) * per_sector; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i, false);
    process_memory(1000);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.batches, 0);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK_EQ(st.store.sectors_used, threshold_sectors - 1u);
    /* at the threshold: one batch of the oldest full sectors goes to flash */
    for (; i <= threshold_sectors * per_sector; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i, false);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK_EQ(st.store.sectors_used, threshold_sectors);
    process_memory(2000);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.batches, 1);
    CHECK(ss.flushed > 0);
    CHECK_EQ(ss.in_storage, ss.flushed);
    CHECK_EQ(ss.lost, 0);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK(st.store.sectors_used < threshold_sectors);
    CHECK_EQ(st.store.stored, threshold_sectors * per_sector); /* flash + RAM */
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, threshold_sectors * per_sector);
    printf("  spill: threshold 10 %% = %lu of %lu RAM sectors; one batch moved %lu records, "
           "%lu RAM sectors left; flash: %lu programs, %lu erases\n",
           (unsigned long)threshold_sectors, (unsigned long)st.store.sectors_total, (unsigned long)ss.flushed,
           (unsigned long)st.store.sectors_used, (unsigned long)fl.programs, (unsigned long)fl.erases);
    /* everything comes back in write order, flash first */
    read_tsd_run(HOST_TSD_FIRST, 1, threshold_sectors * per_sector);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_pending, threshold_sectors * per_sector);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, HOST_TSD_FIRST, (uint16_t)(threshold_sectors * per_sector)),
             SPOOL_OK);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.in_storage, 0);
    check_balance();
    check_nor_rules();
}

/* ---- shutdown flush ----------------------------------------------------------------------- */

void test_flash_shutdown_flush(void) {
    spool_storage_stats_t ss;
    uint32_t i, steps = 0;
    uint8_t p = 0, last = 0;
    int monotonic = 1;
    fw_flash_format();
    CHECK_EQ(fw_boot_flash(0), SPOOL_OK);
    /* more than one batch: 1600 TSD records in four sensors + 10 EVT records */
    for (i = 1; i <= 1600u; i++) {
        write_tsd_evt(host_csb, host_csd, (uint16_t)(HOST_TSD_FIRST + i % 4u), i, false);
        if (i % 160u == 0) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, i, 1700000000u + i);
    }
    CHECK(!is_all_ram_empty());
    CHECK_EQ(get_flush_progress(), 101); /* no flush requested */
    flush_all_to_disk();
    while (steps < 1000u) {
        p = get_flush_progress(); /* each call moves one batch */
        steps++;
        if (p < last) monotonic = 0;
        last = p;
        if (p == 101) break;
    }
    printf("  shutdown flush: 101 after %lu get_flush_progress calls\n", (unsigned long)steps);
    CHECK_EQ(p, 101);
    CHECK(monotonic);
    CHECK(steps > 1u);
    CHECK(is_all_ram_empty());
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.in_storage, 1610);
    CHECK_EQ(ss.lost, 0);
    CHECK_EQ(get_flush_progress(), 101); /* stays 101 */
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 400);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, 10);
    check_balance();
    check_nor_rules();
}

/* ---- power cycle and recovery ------------------------------------------------------------- */

static void read_events(uint32_t first, uint32_t n) {
    spool_sensor_t h;
    spool_record_t r;
    uint32_t i, wrong = 0;
    CHECK_EQ(spool_sensor_open(SOURCE_GATEWAY, host_csb[HOST_EVENT].id, 0, &h), SPOOL_OK);
    for (i = 0; i < n; i++) {
        if (spool_read(h, &r) != SPOOL_OK || r.value != first + i ||
            r.time_ms != (1700000000ull + first + i) * 1000ull || r.kind != SPOOL_KIND_EVT) {
            wrong++;
        }
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(spool_read(h, &r), SPOOL_ERR_NO_DATA);
}

void test_flash_power_cycle_recovery(void) {
    spool_storage_stats_t ss;
    uint32_t i, n = 0, v;
    fw_flash_format();
    CHECK_EQ(fw_boot_flash(0), SPOOL_OK);
    CHECK_EQ(spool_recover(&n), SPOOL_OK); /* fresh part: nothing to recover */
    CHECK_EQ(n, 0);
    for (i = 1; i <= 200u; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i, false);
    for (i = 0; i < 10u; i++) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 1000u + i, 1700000000u + 1000u + i);
    /* upload: 50 delivered and acknowledged, 20 more sent but not acknowledged */
    read_tsd_run(HOST_TSD_FIRST, 1, 50);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, HOST_TSD_FIRST, 50), SPOOL_OK);
    read_tsd_run(HOST_TSD_FIRST, 51, 20);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_pending, 20);
    /* ignition off: flush everything, then the power goes */
    flush_all_to_disk();
    for (i = 0; i < 1000u && get_flush_progress() != 101; i++) {
    }
    CHECK(is_all_ram_empty());
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.in_storage, 160);

    /* power cycle 1: RAM is gone, the flash region is not */
    CHECK_EQ(fw_boot_flash(0), SPOOL_OK);
    CHECK_EQ(spool_recover(&n), SPOOL_OK);
    printf("  power cycle 1: %lu records recovered (150 TSD not acknowledged, incl. 20 sent, + 10 EVT)\n",
           (unsigned long)n);
    CHECK_EQ(n, 160);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.recovered, 1);
    CHECK_EQ(ss.recovered_records, 160);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 150);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_pending, 0);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, 10);
    /* exactly the records not acknowledged, in order: 51..200, then nothing */
    read_tsd_run(HOST_TSD_FIRST, 51, 150);
    v = 12345;
    read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, &v);
    CHECK_EQ(v, 0);
    read_events(1000, 10);
    /* this time 30 are acknowledged (51..80: the mark goes to flash), the rest is not */
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, HOST_TSD_FIRST, 30), SPOOL_OK);
    revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 120);
    check_balance();

    /* power cycle 2, without a shutdown flush (RAM held nothing new) */
    CHECK_EQ(fw_boot_flash(0), SPOOL_OK);
    CHECK_EQ(spool_recover(&n), SPOOL_OK);
    printf("  power cycle 2: %lu records recovered (120 TSD + 10 EVT)\n", (unsigned long)n);
    CHECK_EQ(n, 130);
    read_tsd_run(HOST_TSD_FIRST, 81, 120);
    v = 12345;
    read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, &v);
    CHECK_EQ(v, 0);
    read_events(1000, 10);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, HOST_TSD_FIRST, 120), SPOOL_OK);
    /* new data after recovery goes behind the recovered records */
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 201, false);
    read_tsd_run(HOST_TSD_FIRST, 201, 1);
    check_balance();
    check_nor_rules();
    printf("  flash: %lu reads, %lu programs, %lu erases, 0 NOR-rule violations\n", (unsigned long)fl.reads,
           (unsigned long)fl.programs, (unsigned long)fl.erases);
}
