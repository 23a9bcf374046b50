/*
 * Call-site suite: the MM1 and MM2 call shapes of the iMatrix API facts reference (section 6,
 * "Behaviours that real call sites depend on"), written as the firmware writes them, against
 * the simulated firmware of tests/c/fw.c. The MM2 calls use the firmware's own common.h
 * types (tests/c/common.h, SPOOL_HAVE_IMATRIX_COMMON), whose imx_result_t numbering differs
 * from imatrix_compat.h's: the suite passes it to spool_imx_set_codes and compares results
 * with the firmware's enumerators, as MM2 code does.
 *
 * Compiled with -Wall -Wextra -Werror as C99, C11 and C++17 (scripts/c-tests.sh) and as C11
 * in the QEMU firmware (scripts/firmware-tests.sh); no designated initializers, no compound
 * literals, no implicit void * conversions.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#define SPOOL_HAVE_IMATRIX_COMMON 1
#include "harness.h"
#include "prototypes.h"

/* The uploader's EVT wire record (storage.h imx_time_data_t): time first, as MM1 stores it. */
typedef struct {
    uint32_t utc_sample_time;
    uint32_t data;
} imx_time_data_t;

#define MAX_BULK_READ_SAMPLES 16
#define GW IMX_UPLOAD_GATEWAY
#define T0 1700000000u

/* Boot the simulated firmware and hand the library the firmware's imx_result_t numbers. */
static void boot(const spool_flash_t *flash) {
    spool_imx_codes_t codes = SPOOL_IMX_CODES_FROM_ENUM;
    CHECK_EQ(fw_boot_with(0, flash), SPOOL_OK);
    CHECK_EQ(spool_imx_set_codes(&codes), SPOOL_OK);
    g_utc_now = T0;
}

static imx_data_32_t u32v(uint32_t v) {
    imx_data_32_t d;
    memset(&d, 0, sizeof d);
    d.uint_32bit = v;
    return d;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- MM1 uploader: imx_set_csb_vars + read up to no_samples - no_pending + ACK idiom ----- */

typedef struct {
    uint32_t value, utc;
    uint16_t entry;
} sent_t;

#define PACKET_RECORDS 6
static sent_t g_packet[PACKET_RECORDS];
static uint16_t g_entry_counts[NO_HOST];

/* Fills one packet the way imatrix_upload.c does: for each entry with no_samples > 0, read
 * as many as fit, capped at no_samples - no_pending; EVT through (uint32_t *)&event_sample. */
static unsigned mm1_fill_packet(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                                uint16_t no_items) {
    unsigned n = 0;
    uint16_t i;
    memset(g_entry_counts, 0, sizeof g_entry_counts);
    for (i = 0; i < no_items && n < PACKET_RECORDS; i++) {
        while (csd[i].no_samples > 0 && csd[i].no_samples - csd[i].no_pending > 0 && n < PACKET_RECORDS) {
            if (csb[i].sample_rate == 0) {
                imx_time_data_t event_sample;
                event_sample.utc_sample_time = 0;
                event_sample.data = 0;
                read_tsd_evt(csb, csd, i, (uint32_t *)&event_sample);
                g_packet[n].value = event_sample.data;
                g_packet[n].utc = event_sample.utc_sample_time;
            } else {
                uint32_t tsd_sample_value = 0;
                read_tsd_evt(csb, csd, i, &tsd_sample_value);
                g_packet[n].value = tsd_sample_value;
                g_packet[n].utc = 0;
            }
            g_packet[n].entry = i;
            g_entry_counts[i]++;
            n++;
        }
    }
    return n;
}

/* The "erase exactly N" ACK idiom (erase_specific_samples, imatrix_upload.c). */
static void mm1_ack_packet(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                           uint16_t no_items) {
    uint16_t i;
    for (i = 0; i < no_items; i++) {
        if (g_entry_counts[i] > 0) {
            uint16_t saved = csd[i].no_pending;
            csd[i].no_pending = g_entry_counts[i];
            erase_tsd_evt(csb, csd, i);
            csd[i].no_pending = (uint16_t)(saved - g_entry_counts[i]);
        }
    }
}

static void test_mm1_uploader_tsd_evt(void) {
    enum { NT = 10, NE = 5 };
    uint32_t next_tsd = 100, next_evt = 500, wrong = 0, sent = 0, packets = 0;
    uint16_t i;
    boot(NULL);
    for (i = 0; i < NT; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 100u + i, false);
    for (i = 0; i < NE; i++) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 500u + i, T0 + 100u + i);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, NT);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, NE);
    while (packets < 20) {
        unsigned k, n = mm1_fill_packet(host_csb, host_csd, NO_HOST);
        if (n == 0) break;
        packets++;
        if (packets == 2) {
            /* CoAP timeout: the response handler runs with NULL, old code reverts */
            revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST);
            for (i = 0; i < NO_HOST; i++) CHECK_EQ(host_csd[i].no_pending, 0);
            continue;
        }
        for (k = 0; k < n; k++) {
            if (g_packet[k].entry == HOST_TSD_FIRST) {
                if (g_packet[k].value != next_tsd++) wrong++;
            } else if (g_packet[k].entry == HOST_EVENT) {
                if (g_packet[k].value != next_evt || g_packet[k].utc != T0 + 100u + (next_evt - 500u)) wrong++;
                next_evt++;
            } else {
                wrong++;
            }
            sent++;
        }
        mm1_ack_packet(host_csb, host_csd, NO_HOST); /* CoAP 2.xx */
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(sent, NT + NE); /* every record exactly once, in order, the NACKed packet again */
    CHECK_EQ(next_tsd, 100u + NT);
    CHECK_EQ(next_evt, 500u + NE);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, 0);
    CHECK_EQ(host_csd[HOST_EVENT].no_pending, 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- validation reads undone with no_pending -= k (UPG validate/snapshot/verify) ------- */

static void test_validation_read_idiom(void) {
    const uint16_t e = HOST_TSD_FIRST + 1;
    uint32_t v, i, wrong = 0;
    boot(NULL);
    for (i = 0; i < 12; i++) write_tsd_evt(host_csb, host_csd, e, 1000u + i, false);
    /* validate_test_data_pattern: read up to 5, pattern matches, restore the pending count */
    for (i = 0; i < 5; i++) {
        v = 0;
        read_tsd_evt(host_csb, host_csd, e, &v);
        if (v != 1000u + i) wrong++;
    }
    CHECK_EQ(host_csd[e].no_pending, 5);
    host_csd[e].no_pending -= 5;
    /* mismatch path: read 3, subtract (i + 1) = 3 */
    for (i = 0; i < 3; i++) read_tsd_evt(host_csb, host_csd, e, &v);
    host_csd[e].no_pending -= 3;
    /* take_data_state_snapshot: read 2, subtract 2 (the last two un-read only) */
    read_tsd_evt(host_csb, host_csd, e, &v);
    read_tsd_evt(host_csb, host_csd, e, &v);
    CHECK_EQ(v, 1001u);
    host_csd[e].no_pending -= 1; /* partial: record 1001 is unsent again, 1000 stays pending */
    v = 0;
    read_tsd_evt(host_csb, host_csd, e, &v);
    CHECK_EQ(v, 1001u); /* MM1: the next read returns the record at offset no_pending */
    host_csd[e].no_pending = 0;
    /* the real upload then sends everything, in order, and erases exactly that */
    for (i = 0; i < 12; i++) {
        v = 0;
        read_tsd_evt(host_csb, host_csd, e, &v);
        if (v != 1000u + i) wrong++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(host_csd[e].no_pending, 12);
    erase_tsd_evt(host_csb, host_csd, e);
    CHECK_EQ(host_csd[e].no_samples, 0);
    CHECK_EQ(host_csd[e].no_pending, 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- NACK revert then ACK through the array functions (old uploader, CDL:676-699) ------ */

static void test_nack_revert(void) {
    uint32_t v, i;
    uint16_t e;
    boot(NULL);
    for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST; e++)
        for (i = 0; i < 4; i++) write_tsd_evt(host_csb, host_csd, e, e * 100u + i, false);
    for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST; e++) read_tsd_evt(host_csb, host_csd, e, &v);
    revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST); /* failure or timeout */
    for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST; e++) {
        CHECK_EQ(host_csd[e].no_pending, 0);
        CHECK_EQ(host_csd[e].no_samples, 4);
        v = 0;
        read_tsd_evt(host_csb, host_csd, e, &v);
        CHECK_EQ(v, e * 100u); /* lossless: the oldest record again */
        read_tsd_evt(host_csb, host_csd, e, &v);
        CHECK_EQ(v, e * 100u + 1);
    }
    erase_tsd_evt_pending_data(host_csb, host_csd, NO_HOST); /* success */
    for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST; e++) {
        CHECK_EQ(host_csd[e].no_samples, 2);
        CHECK_EQ(host_csd[e].no_pending, 0);
        read_tsd_evt(host_csb, host_csd, e, &v);
        CHECK_EQ(v, e * 100u + 2);
    }
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- MM2 bulk upload: count, bulk read, accept only SUCCESS && filled == n, ACK/NACK --- */

static tsd_evt_value_t g_array[MAX_BULK_READ_SAMPLES];

static unsigned mm2_upload_cycle(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                                 uint16_t no_items, int ack, uint32_t *sum) {
    unsigned accepted = 0;
    uint16_t i;
    for (i = 0; i < no_items; i++) {
        uint32_t n = imx_get_new_sample_count(GW, &csb[i], &csd[i]);
        uint16_t filled = 0;
        imx_result_t result;
        if (n == 0) continue;
        if (n > MAX_BULK_READ_SAMPLES) n = MAX_BULK_READ_SAMPLES;
        result = imx_read_bulk_samples(GW, &csb[i], &csd[i], g_array, MAX_BULK_READ_SAMPLES, n, &filled);
        if (result != IMX_SUCCESS || filled != n) continue; /* logged and skipped by MM2 code */
        accepted += filled;
        while (filled > 0) *sum += g_array[--filled].value;
    }
    for (i = 0; i < no_items; i++) {
        if (imx_has_pending_data(GW, &csb[i], &csd[i])) {
            if (ack) {
                CHECK_EQ(imx_erase_all_pending(GW, &csb[i], &csd[i]), IMX_SUCCESS);
            } else {
                CHECK_EQ(imx_revert_all_pending(GW, &csb[i], &csd[i]), IMX_SUCCESS);
            }
        }
    }
    return accepted;
}

static void test_mm2_bulk_read_erase(void) {
    enum { NT = 20, NE = 6 };
    uint32_t i, sum = 0, want = 0;
    uint16_t filled = 7;
    imx_data_32_t f;
    tsd_evt_data_t one;
    boot(NULL);
    for (i = 0; i < NT; i++) {
        CHECK_EQ(imx_write_tsd(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], u32v(10u + i)), IMX_SUCCESS);
        want += 10u + i;
    }
    for (i = 0; i < NE; i++) {
        CHECK_EQ(imx_write_evt(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], u32v(70u + i),
                               (imx_utc_time_ms_t)(T0 + i) * 1000u),
                 IMX_SUCCESS);
        want += 70u + i;
    }
    memset(&f, 0, sizeof f);
    f.float_32bit = 21.5f;
    CHECK_EQ(imx_write_tsd(GW, &host_csb[HOST_TSD_LAST], &host_csd[HOST_TSD_LAST], f), IMX_SUCCESS);
    want += float_bits(21.5f);
    /* one format per sensor; the wrong source is refused with the firmware's number */
    CHECK_EQ(imx_write_tsd(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], u32v(1)), IMX_INVALID_ENTRY);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_CONFLICT);
    CHECK_EQ(imx_write_tsd(IMX_UPLOAD_BLE_DEVICE, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], u32v(1)),
             IMX_INVALID_ENTRY);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_SOURCE_MISMATCH);
    CHECK_EQ(imx_get_new_sample_count(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST]), NT);
    CHECK_EQ(imx_get_total_sample_count(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT]), NE);
    /* peek does not mark pending */
    CHECK_EQ(imx_peek_next_tsd_evt(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], 2, &one), IMX_SUCCESS);
    CHECK_EQ(one.value, 72u);
    CHECK_EQ(one.utc_time_ms, (uint64_t)(T0 + 2u) * 1000u);
    CHECK_EQ(imx_peek_next_tsd_evt(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], NE, &one), IMX_NO_DATA);
    CHECK(!imx_has_pending_data(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT]));
    /* NACK cycle: nothing lost */
    CHECK_EQ(mm2_upload_cycle(host_csb, host_csd, NO_HOST, 0, &sum), MAX_BULK_READ_SAMPLES + NE + 1);
    CHECK_EQ(imx_get_new_sample_count(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST]), NT);
    /* ACK cycles until drained */
    sum = 0;
    CHECK_EQ(mm2_upload_cycle(host_csb, host_csd, NO_HOST, 1, &sum), MAX_BULK_READ_SAMPLES + NE + 1);
    CHECK_EQ(mm2_upload_cycle(host_csb, host_csd, NO_HOST, 1, &sum), NT - MAX_BULK_READ_SAMPLES);
    CHECK_EQ(mm2_upload_cycle(host_csb, host_csd, NO_HOST, 1, &sum), 0);
    CHECK_EQ(sum, want);
    /* after ACK: IMX_NO_DATA, never zeroed records */
    CHECK_EQ(imx_read_bulk_samples(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], g_array,
                                   MAX_BULK_READ_SAMPLES, 4, &filled),
             IMX_NO_DATA);
    CHECK_EQ(filled, 0);
    CHECK_EQ(imx_read_next_tsd_evt(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], &one), IMX_NO_DATA);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    /* the single-record loop: while (imx_read_next_tsd_evt(...) == IMX_SUCCESS) */
    for (i = 0; i < 3; i++) imx_write_tsd(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], u32v(i));
    i = 0;
    while (imx_read_next_tsd_evt(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], &one) == IMX_SUCCESS &&
           i < 100) {
        CHECK_EQ(one.value, i);
        i++;
    }
    CHECK_EQ(i, 3);
    CHECK_EQ(imx_erase_all_pending(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST]), IMX_SUCCESS);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- shutdown: flush_all_to_disk, then wait for 101 (TS/test_shutdown.c) ---------------- */

static void test_shutdown_wait_for_101(void) {
    spool_flash_t fl;
    uint32_t i, now = 0, iterations = 0, v;
    boot(NULL);
    flush_all_to_disk(); /* empty store (and RAM only): 101 straight after the request */
    CHECK_EQ(get_flush_progress(), 101);
    callsite_flash_wipe();
    fl = callsite_flash();
    boot(&fl);
    for (i = 0; i < 60; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i, false);
    for (i = 0; i < 8; i++) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, i, T0 + i);
    flush_all_to_disk();
    while (get_flush_progress() != 101) {
        process_memory(now += 1000);
        if (++iterations > 10000) break;
    }
    CHECK(iterations < 10000);
    CHECK(is_all_ram_empty());
    CHECK_EQ(get_pending_disk_write_count(), 0);
    /* cancel returns to normal: writes accepted, process_memory keeps running */
    cancel_memory_flush();
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 60, false);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    process_memory(now += 1000);
    /* the other shape: while (get_pending_disk_write_count() > 0) process_memory(now) */
    flush_all_to_disk();
    iterations = 0;
    while (get_pending_disk_write_count() > 0 && ++iterations < 10000) process_memory(now += 1000);
    CHECK(iterations < 10000);
    CHECK(is_all_ram_empty());
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 61);
    /* MM2 power-down: power event, then shutdown per sensor */
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 61, false);
    imx_power_event_detected();
    for (i = 0; i < NO_HOST; i++) {
        CHECK_EQ(imx_memory_manager_shutdown(GW, &host_csb[i], &host_csd[i], 60000), IMX_SUCCESS);
    }
    CHECK(is_all_ram_empty());
    /* the data is still all there, in order */
    for (i = 0; i < 62; i++) {
        v = 0xFFFFFFFFu;
        read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, &v);
        CHECK_EQ(v, i);
    }
    erase_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- GPS co-logging, MM1 (add_gps_location) and MM2 (init_gps_config + with_gps) ------ */

static void expect_gps_record(uint16_t e, uint32_t utc_s, float value) {
    uint32_t rec[2] = {0, 0};
    read_tsd_evt(host_csb, host_csd, e, rec);
    CHECK_EQ(rec[0], utc_s);
    CHECK_EQ(rec[1], float_bits(value));
}

static void test_gps_both_ways(void) {
    tsd_evt_value_t s[4];
    uint16_t filled = 0, e;
    boot(NULL);
    /* MM1: write_tsd_evt(icb.i_scb, icb.i_sd, stopped_sensor_entry, stopped_state, true) */
    g_utc_now = T0 + 5;
    write_tsd_evt(host_csb, host_csd, HOST_STOPPED, 1, true);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    expect_gps_record(HOST_LAT, T0 + 5, g_position.latitude);
    expect_gps_record(HOST_LON, T0 + 5, g_position.longitude);
    expect_gps_record(HOST_ALT, T0 + 5, g_position.altitude);
    CHECK_EQ(host_csd[HOST_SPEED].no_samples, 0); /* speed id not configured for MM1 */
    erase_tsd_evt_pending_data(host_csb, host_csd, NO_HOST);
    /* MM2: imx_init_gps_config_for_source(IMX_UPLOAD_GATEWAY, icb.i_scb, icb.i_sd, n, 2, 3, 4, 19) */
    CHECK_EQ(imx_init_gps_config_for_source(GW, host_csb, host_csd, NO_HOST, HOST_LAT, HOST_LON, HOST_ALT,
                                            HOST_SPEED),
             IMX_SUCCESS);
    g_utc_now = T0 + 9;
    CHECK_EQ(imx_write_event_with_gps(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], u32v(42)), IMX_SUCCESS);
    CHECK_EQ(imx_write_gps_location(GW, (imx_utc_time_ms_t)(T0 + 20) * 1000u), IMX_SUCCESS);
    for (e = HOST_LAT; e <= HOST_SPEED; e++) {
        CHECK_EQ(imx_read_bulk_samples(GW, &host_csb[e], &host_csd[e], s, 4, 4, &filled), IMX_SUCCESS);
        CHECK_EQ(filled, 2); /* the event's snapshot and the location-only one */
        CHECK_EQ(s[0].timestamp, (uint64_t)(T0 + 9) * 1000u);
        CHECK_EQ(s[1].timestamp, (uint64_t)(T0 + 20) * 1000u);
        CHECK_EQ(imx_erase_all_pending(GW, &host_csb[e], &host_csd[e]), IMX_SUCCESS);
    }
    CHECK_EQ(imx_read_bulk_samples(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], s, 4, 4, &filled), IMX_SUCCESS);
    CHECK_EQ(filled, 1);
    CHECK_EQ(s[0].value, 42u);
    CHECK_EQ(s[0].timestamp, (uint64_t)(T0 + 9) * 1000u); /* one timestamp T for all */
    /* no fix: nothing written, IMX_NO_DATA; every entry invalid: not configured, a no-op */
    g_position.latitude = 0.0f;
    CHECK_EQ(imx_write_gps_location(GW, 0), IMX_NO_DATA);
    g_position.latitude = 45.52f;
    CHECK_EQ(imx_init_gps_config_for_source(GW, host_csb, host_csd, NO_HOST, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
             IMX_SUCCESS);
    CHECK_EQ(imx_write_gps_location(GW, 0), IMX_SUCCESS);
    CHECK_EQ(host_csd[HOST_LAT].no_samples, 0);
    /* a source whose arrays are not these is refused */
    CHECK_EQ(imx_init_gps_config_for_source(IMX_UPLOAD_BLE_DEVICE, host_csb, host_csd, NO_HOST, 0, 1, 2, 3),
             IMX_INVALID_ENTRY);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- recovery after reboot (MM1 perform_power_failure_recovery, MM2 per sensor) -------- */

static void test_recovery_after_reboot(void) {
    enum { NT = 30, NE = 7 };
    spool_flash_t fl;
    tsd_evt_value_t s[MAX_BULK_READ_SAMPLES];
    uint32_t i, v, wrong = 0, got = 0, iterations = 0;
    uint16_t filled = 0, e;
    callsite_flash_wipe();
    fl = callsite_flash();
    boot(&fl);
    for (i = 0; i < NT; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 300u + i, false);
    for (i = 0; i < NE; i++)
        imx_write_evt(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], u32v(900u + i), (imx_utc_time_ms_t)(T0 + i) * 1000u);
    flush_all_to_disk();
    while (get_flush_progress() != 101 && ++iterations < 10000) process_memory(iterations);
    /* power cut; boot on the same flash bytes */
    boot(&fl);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    init_disk_storage_system();
    perform_power_failure_recovery();
    for (e = 0; e < NO_HOST; e++) {
        CHECK_EQ(imx_recover_sensor_disk_data(GW, &host_csb[e], &host_csd[e]), IMX_SUCCESS);
    }
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, NT);
    CHECK(imx_get_total_sample_count(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT]) >= NE);
    /* MM1 reads: original order and values */
    for (i = 0; i < NT; i++) {
        v = 0;
        read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, &v);
        if (v != 300u + i) wrong++;
    }
    erase_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST);
    /* MM2 reads */
    while (imx_read_bulk_samples(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT], s, MAX_BULK_READ_SAMPLES, 3,
                                 &filled) == IMX_SUCCESS &&
           got < 100) {
        uint16_t k;
        for (k = 0; k < filled; k++, got++) {
            if (s[k].value != 900u + got || s[k].timestamp != (uint64_t)(T0 + got) * 1000u) wrong++;
        }
        CHECK_EQ(imx_erase_all_pending(GW, &host_csb[HOST_EVENT], &host_csd[HOST_EVENT]), IMX_SUCCESS);
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(got, NE);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- MM1 statistics and the MM2 lifecycle / diagnostics ---------------------------------- */

static void test_statistics_and_lifecycle(void) {
    imx_memory_statistics_t copy;
    imx_memory_statistics_t *st;
    mm2_stats_t m;
    mm2_sensor_state_t state;
    uint32_t i;
    boot(NULL);
    imx_init_memory_statistics();
    st = imx_get_memory_statistics();
    CHECK(st != NULL);
    if (st == NULL) return;
    memcpy(&copy, st, sizeof copy); /* tests memcpy the whole struct */
    CHECK(copy.total_sectors > 0);
    CHECK_EQ(copy.used_sectors, 0);
    CHECK_EQ(copy.free_sectors, copy.total_sectors);
    for (i = 0; i < 40; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i, false);
    imx_update_memory_statistics();
    CHECK(st->used_sectors > 0);
    CHECK_EQ(st->used_sectors + st->free_sectors, st->total_sectors);
    CHECK(st->usage_percentage > 0.0f);
    CHECK(st->peak_usage >= st->used_sectors);
    CHECK_EQ(st->allocation_count, 40);
    CHECK_EQ(st->last_updated, T0);
    CHECK_EQ(imx_calculate_fragmentation_level(), 0);
    imx_print_memory_statistics();
    cli_memory_stats(0);
    CHECK_EQ(imx_get_memory_stats(&m), IMX_SUCCESS);
    CHECK_EQ(m.total_sectors, st->total_sectors);
    CHECK_EQ(m.total_allocations, 40);
    CHECK_EQ(imx_get_sensor_state(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], &state), IMX_SUCCESS);
    CHECK_EQ(state.sensor_id, host_csb[HOST_TSD_FIRST].id);
    CHECK_EQ(state.total_records, 40);
    CHECK(is_disk_usage_acceptable());
    /* lifecycle */
    CHECK_EQ(imx_memory_manager_init(1024), IMX_SUCCESS); /* spool_init already ran */
    CHECK_EQ(imx_memory_manager_ready(), 1);
    CHECK_EQ(imx_configure_sensor(GW, &host_csb[HOST_TSD_LAST], &host_csd[HOST_TSD_LAST]), IMX_SUCCESS);
    CHECK_EQ(imx_activate_sensor(GW, &host_csb[HOST_TSD_LAST], &host_csd[HOST_TSD_LAST]), IMX_SUCCESS);
    CHECK_EQ(imx_deactivate_sensor(GW, &host_csb[HOST_TSD_LAST], &host_csd[HOST_TSD_LAST]), IMX_SUCCESS);
    CHECK_EQ(process_memory_manager(1000), IMX_SUCCESS);
    CHECK_EQ(imx_set_utc_available(1), IMX_SUCCESS);
    CHECK_EQ(mm2_get_utc_time_ms(), (imx_utc_time_ms_t)T0 * 1000u);
    CHECK_EQ(imx_validate_sector_chains(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST]), IMX_SUCCESS);
    CHECK_EQ(imx_force_garbage_collection(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST]), 0);
    CHECK_EQ(imx_get_memory_stats(NULL), IMX_INVALID_PARAMETER);
    /* an element pointer that is not in a registered array */
    CHECK_EQ(imx_configure_sensor(GW, &host_csb[0], &can_csd[0]), IMX_INVALID_ENTRY);
    /* before init: IMX_INIT_ERROR with the firmware's number; imx_sat_init initialises */
    spool_deinit();
    CHECK_EQ(imx_memory_manager_ready(), 0);
    CHECK_EQ(imx_write_tsd(GW, &host_csb[HOST_TSD_FIRST], &host_csd[HOST_TSD_FIRST], u32v(1)), IMX_INIT_ERROR);
    st = imx_get_memory_statistics();
    CHECK(st != NULL && st->total_sectors == 0);
    imx_sat_init();
    CHECK_EQ(imx_memory_manager_ready(), 1);
    spool_deinit();
    init_ext_memory(0);
    CHECK_EQ(imx_memory_manager_ready(), 1);
    CHECK_EQ(imx_memory_manager_init(0), IMX_SUCCESS);
    spool_deinit();
    CHECK_EQ(imx_memory_manager_init(0), IMX_SUCCESS);
    CHECK_EQ(imx_memory_manager_ready(), 1);
    boot(NULL);
    CHECK_EQ(spool_imx_set_codes(NULL), SPOOL_OK); /* back to imatrix_compat.h's numbers */
}

const callsite_test_t g_callsite_tests[] = {
    {"callsite: MM1 uploader loop, TSD + EVT, timeout revert, erase-exactly-N ACK", test_mm1_uploader_tsd_evt},
    {"callsite: validation reads undone with no_pending -= k", test_validation_read_idiom},
    {"callsite: NACK revert_tsd_evt_pending_data, ACK erase_tsd_evt_pending_data", test_nack_revert},
    {"callsite: MM2 bulk read / ACK / NACK loop, IMX_NO_DATA after ACK", test_mm2_bulk_read_erase},
    {"callsite: shutdown while (get_flush_progress() != 101), MM2 power-down", test_shutdown_wait_for_101},
    {"callsite: GPS co-logging, MM1 add_gps_location and MM2 with_gps / location", test_gps_both_ways},
    {"callsite: recovery after reboot, MM1 and MM2 per sensor", test_recovery_after_reboot},
    {"callsite: MM1 statistics, MM2 lifecycle and diagnostics", test_statistics_and_lifecycle},
};
const unsigned g_callsite_test_count = sizeof g_callsite_tests / sizeof g_callsite_tests[0];
