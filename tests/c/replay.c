/* Replays of the legacy call sites (reference section 7) against the library. */
#include <string.h>
#include "harness.h"

static icb_t icb_type(int t) {
    icb_t r;
    if (t == 0) {
        r.csb = host_csb;
        r.csd = host_csd;
        r.no_items = NO_HOST;
    } else {
        r.csb = can_csb;
        r.csd = can_csd;
        r.no_items = NO_CAN;
    }
    return r;
}

#define NO_TYPES 2
#define MAX_ITEMS NO_CAN
#define IMX_UPLOAD_REQUEST_TIMEOUT 30000u

/* Per-entry delivery model: what the uploader has seen acknowledged. */
typedef struct {
    uint32_t delivered[NO_TYPES][MAX_ITEMS];
    uint32_t last_value[NO_TYPES][MAX_ITEMS];
    uint32_t order_errors;
} model_t;

typedef struct {
    uint16_t entry_counts[NO_TYPES][MAX_ITEMS];
    uint32_t values[NO_TYPES][MAX_ITEMS][64];
    uint32_t total;
} packet_t;

/* hal_sample.c:406 (hal_sample_all): periodic sensors, sample_rate > 0 only. */
static void hal_sample_all(uint32_t value) {
    uint16_t active;
    for (active = 0; active < NO_HOST; active++) {
        if (host_csb[active].sample_rate == 0) continue;
        host_csd[active].last_value.uint_32bit = value;
        write_tsd_evt(host_csb, host_csd, active, host_csd[active].last_value.uint_32bit, false);
        host_csd[active].reset_max_value = true;
    }
}

/* can_event.c:152 (can_process_event). */
static void can_process_event(uint16_t entry, const void *value) {
    memcpy(&can_csd[entry].last_value.uint_32bit, value, sizeof(uint32_t));
    write_tsd_evt(can_csb, can_csd, entry, can_csd[entry].last_value.uint_32bit, false);
}

/* imatrix_upload.c LOAD_SAMPLES_PACKET (fixed bound: min(fit, no_samples - no_pending)). */
static void load_samples_packet(packet_t *p, uint32_t fit) {
    int t;
    uint16_t i, k;
    memset(p, 0, sizeof *p);
    for (t = 0; t < NO_TYPES; t++) {
        icb_t c = icb_type(t);
        for (i = 0; i < c.no_items && p->total < fit; i++) {
            uint32_t avail = (uint32_t)(c.csd[i].no_samples - c.csd[i].no_pending);
            uint32_t n = fit - p->total < avail ? fit - p->total : avail;
            if (n > 64) n = 64;
            for (k = 0; k < n; k++) {
                uint32_t v;
                if (c.csb[i].sample_rate == 0) {
                    struct {
                        uint32_t utc;
                        uint32_t value;
                    } event_sample;
                    read_tsd_evt(c.csb, c.csd, i, (uint32_t *)&event_sample);
                    v = event_sample.value;
                } else {
                    uint32_t tsd_sample_value;
                    read_tsd_evt(c.csb, c.csd, i, &tsd_sample_value);
                    v = tsd_sample_value;
                }
                CHECK_EQ(spool_last_status(), SPOOL_OK);
                p->values[t][i][p->entry_counts[t][i]] = v;
                p->entry_counts[t][i]++;
                p->total++;
            }
        }
    }
}

/* _imatrix_upload_response_hdl: ACK per entry with atomic_erase_records, NACK by revert. */
static void upload_response(const packet_t *p, bool success, model_t *m) {
    int t;
    uint16_t i, k;
    for (t = 0; t < NO_TYPES; t++) {
        icb_t c = icb_type(t);
        if (!success) {
            revert_tsd_evt_pending_data(c.csb, c.csd, c.no_items);
            CHECK_EQ(spool_last_status(), SPOOL_OK);
            continue;
        }
        for (i = 0; i < c.no_items; i++) {
            if (p->entry_counts[t][i] == 0) continue;
            CHECK_EQ(atomic_erase_records(c.csb, c.csd, i, p->entry_counts[t][i]), SPOOL_OK);
            for (k = 0; k < p->entry_counts[t][i]; k++) {
                uint32_t v = p->values[t][i][k];
                if (m->delivered[t][i] > 0 && v <= m->last_value[t][i]) m->order_errors++;
                m->last_value[t][i] = v;
                m->delivered[t][i]++;
            }
        }
    }
}

static uint32_t stored_total(void) {
    spool_stats_t s;
    CHECK_EQ(spool_stats(&s), SPOOL_OK);
    return (uint32_t)s.store.stored;
}

void test_register_and_mirrors(void) {
    uint16_t i;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    for (i = 0; i < NO_HOST; i++) {
        CHECK_EQ(host_csd[i].no_samples, 0);
        CHECK_EQ(host_csd[i].no_pending, 0);
    }
    {
        spool_layout_t l = fw_layout();
        /* same arrays twice, and the CAN csd with the host csb: rejected */
        CHECK_EQ(spool_register_sensors(host_csb, host_csd, NO_HOST, &l, 9), SPOOL_ERR_OVERLAP);
        CHECK_EQ(spool_register_sensors(host_csb, can_csd, NO_HOST, &l, 9), SPOOL_ERR_OVERLAP);
    }
    CHECK_EQ(spool_check(), SPOOL_OK);
}

void test_sampler_tsd(void) {
    uint32_t s;
    uint16_t i;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    for (s = 1; s <= 10; s++) hal_sample_all(s * 10);
    for (i = HOST_TSD_FIRST; i <= HOST_TSD_LAST; i++) {
        CHECK_EQ(host_csd[i].no_samples, 10);
        CHECK_EQ(host_csd[i].no_pending, 0);
        CHECK(host_csd[i].reset_max_value);
        CHECK_EQ(host_csd[i].last_value.uint_32bit, 100);
        CHECK_EQ(host_csd[i].last_sample_time, (uint64_t)g_utc_now * 1000u);
    }
    CHECK_EQ(host_csd[HOST_LAT].no_samples, 0);
    CHECK_EQ(host_csd[HOST_EVENT].no_samples, 0);
    /* hal_sample_hybrid: the same call for one index */
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, host_csd[HOST_TSD_FIRST].last_value.uint_32bit, false);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 11);
    {
        uint32_t v;
        read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, &v);
        CHECK_EQ(v, 10);
        CHECK_EQ(host_csd[HOST_TSD_FIRST].no_pending, 1);
    }
}

void test_event_with_gps(void) {
    struct {
        uint32_t utc;
        uint32_t value;
    } ev;
    float f;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    g_utc_now = 1700000500u;
    /* process_location_state.c:142 */
    write_tsd_evt(host_csb, host_csd, HOST_STOPPED, 1, true);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    CHECK_EQ(host_csd[HOST_STOPPED].no_samples, 1);
    CHECK_EQ(host_csd[HOST_LAT].no_samples, 1);
    CHECK_EQ(host_csd[HOST_LON].no_samples, 1);
    CHECK_EQ(host_csd[HOST_ALT].no_samples, 1);
    CHECK_EQ(host_csd[HOST_SPEED].no_samples, 0); /* speed not configured */
    read_tsd_evt(host_csb, host_csd, HOST_LAT, (uint32_t *)&ev);
    memcpy(&f, &ev.value, sizeof f);
    CHECK_EQ(ev.utc, 1700000500u);
    CHECK(f == g_position.latitude);
    read_tsd_evt(host_csb, host_csd, HOST_LON, (uint32_t *)&ev);
    memcpy(&f, &ev.value, sizeof f);
    CHECK(f == g_position.longitude);
    read_tsd_evt(host_csb, host_csd, HOST_STOPPED, (uint32_t *)&ev);
    CHECK_EQ(ev.utc, 1700000500u);
    CHECK_EQ(ev.value, 1);
    /* hal_event without location */
    write_tsd_evt(host_csb, host_csd, HOST_EVENT, 5, false);
    CHECK_EQ(host_csd[HOST_LAT].no_samples, 1);
    /* no fix: nothing co-logged */
    g_position.latitude = 0.0f;
    write_tsd_evt(host_csb, host_csd, HOST_STOPPED, 0, true);
    CHECK_EQ(host_csd[HOST_LAT].no_samples, 1);
    CHECK_EQ(host_csd[HOST_STOPPED].no_samples, 2);
    g_position.latitude = 45.52f;
    /* explicit time */
    write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 6, 1600000000u);
    read_tsd_evt(host_csb, host_csd, HOST_EVENT, (uint32_t *)&ev);
    CHECK_EQ(ev.value, 5);
    read_tsd_evt(host_csb, host_csd, HOST_EVENT, (uint32_t *)&ev);
    CHECK_EQ(ev.utc, 1600000000u);
    CHECK_EQ(ev.value, 6);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

void test_can_writer(void) {
    uint16_t e;
    uint32_t v;
    spool_stats_t st;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    for (v = 1; v <= 5; v++) {
        for (e = 0; e < UNKNOWN_CAN_BUS_ENTRY; e++) {
            uint32_t raw = v * 1000u + e;
            can_process_event(e, &raw);
        }
    }
    /* can_utils.c:732: unknown CAN ids logged to the dedicated entry */
    write_tsd_evt(can_csb, can_csd, UNKNOWN_CAN_BUS_ENTRY, 0x18FEF100u, false);
    for (e = 0; e < UNKNOWN_CAN_BUS_ENTRY; e++) {
        CHECK_EQ(can_csd[e].no_samples, 5);
        CHECK_EQ(can_csd[e].last_value.uint_32bit, 5000u + e);
    }
    CHECK_EQ(can_csd[UNKNOWN_CAN_BUS_ENTRY].no_samples, 1);
    /* the same sensor ids under another source are other sensors: host is untouched */
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK_EQ(st.store.written, 5 * UNKNOWN_CAN_BUS_ENTRY + 1);
}

void test_uploader_ack_nack_timeout(void) {
    model_t m;
    packet_t p;
    uint32_t s, now = 0, cycles = 0;
    uint16_t i, e;
    int t;
    memset(&m, 0, sizeof m);
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    for (s = 1; s <= 20; s++) {
        hal_sample_all(s);
        for (e = 0; e < 4; e++) {
            uint32_t raw = s;
            can_process_event(e, &raw);
        }
        g_utc_now++;
        write_tsd_evt(host_csb, host_csd, HOST_EVENT, s, false);
    }
    /* cycle 1: NACK (CoAP error class): everything read comes back */
    load_samples_packet(&p, 7);
    CHECK_EQ(p.total, 7);
    upload_response(&p, false, &m);
    for (i = 0; i < NO_HOST; i++) CHECK_EQ(host_csd[i].no_pending, 0);
    /* cycle 2: no response within IMX_UPLOAD_REQUEST_TIMEOUT: the handler gets NULL */
    load_samples_packet(&p, 9);
    {
        uint32_t sent_at = now;
        bool responded = false;
        while (!responded) {
            now += 1000;
            process_memory(now);
            if (now - sent_at >= IMX_UPLOAD_REQUEST_TIMEOUT) {
                upload_response(&p, false, &m); /* _imatrix_upload_response_hdl(NULL) */
                responded = true;
            }
        }
    }
    CHECK_EQ(now, 30000);
    /* new samples arrive while a packet is in flight: they are not part of its ACK */
    load_samples_packet(&p, 5);
    hal_sample_all(21);
    upload_response(&p, true, &m);
    /* then ACK until drained, with a NACK every third packet */
    while (stored_total() > 0 && cycles < 1000) {
        load_samples_packet(&p, 6);
        upload_response(&p, (cycles % 3) != 2, &m);
        cycles++;
    }
    CHECK(cycles < 1000);
    CHECK_EQ(m.order_errors, 0);
    for (t = 0; t < NO_TYPES; t++) {
        icb_t c = icb_type(t);
        for (i = 0; i < c.no_items; i++) {
            CHECK_EQ(c.csd[i].no_samples, 0);
            CHECK_EQ(c.csd[i].no_pending, 0);
        }
    }
    for (i = HOST_TSD_FIRST; i <= HOST_TSD_LAST; i++) {
        CHECK_EQ(m.delivered[0][i], 21);
        CHECK_EQ(m.last_value[0][i], 21);
    }
    CHECK_EQ(m.delivered[0][HOST_EVENT], 20);
    for (e = 0; e < 4; e++) CHECK_EQ(m.delivered[1][e], 20);
    CHECK(is_all_ram_empty());
    CHECK_EQ(spool_check(), SPOOL_OK);
}

void test_patched_erase_idiom(void) {
    /* erase_specific_samples(): no_pending = n; erase_tsd_evt; no_pending = original - n */
    uint32_t v, s;
    uint16_t e = HOST_TSD_FIRST, original;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    for (s = 1; s <= 6; s++) hal_sample_all(s);
    for (s = 0; s < 5; s++) read_tsd_evt(host_csb, host_csd, e, &v);
    CHECK_EQ(host_csd[e].no_pending, 5);
    original = host_csd[e].no_pending;
    host_csd[e].no_pending = 2;
    erase_tsd_evt(host_csb, host_csd, e);
    host_csd[e].no_pending = (uint16_t)(original - 2);
    CHECK_EQ(host_csd[e].no_samples, 4);
    CHECK_EQ(host_csd[e].no_pending, 3);
    /* the original (buggy) ACK path: erase_tsd_evt_pending_data over all entries */
    erase_tsd_evt_pending_data(host_csb, host_csd, NO_HOST);
    CHECK_EQ(host_csd[e].no_samples, 1);
    CHECK_EQ(host_csd[e].no_pending, 0);
    read_tsd_evt(host_csb, host_csd, e, &v);
    CHECK_EQ(v, 6);
    /* over-read: harmless, returns 0, no counter change */
    read_tsd_evt(host_csb, host_csd, e, &v);
    CHECK_EQ(v, 0);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_NO_DATA);
    CHECK_EQ(host_csd[e].no_pending, 1);
    /* atomic_erase_records: exactly count or nothing */
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, e, 2), SPOOL_ERR_ACK_TOO_MANY);
    CHECK_EQ(host_csd[e].no_samples, 1);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, e, 1), SPOOL_OK);
    CHECK_EQ(host_csd[e].no_samples, 0);
    /* reset_csd_entry discards an entry */
    hal_sample_all(7);
    reset_csd_entry(host_csd, e);
    CHECK_EQ(host_csd[e].no_samples, 0);
    CHECK_EQ(host_csd[e + 1].no_samples, 7); /* six from before plus this one */
}

void test_process_memory_loop(void) {
    uint32_t now;
    spool_stats_t a, b;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    hal_sample_all(1);
    CHECK_EQ(spool_stats(&a), SPOOL_OK);
    /* Fleet-Connect-1 main loop: every iteration, acts once a second */
    for (now = 0; now < 10000; now += 10) {
        process_memory(now);
        if (now % 1000 == 0) hal_sample_all(now / 1000 + 2);
    }
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    CHECK_EQ(spool_stats(&b), SPOOL_OK);
    CHECK_EQ(b.store.written, a.store.written + 10 * (HOST_TSD_LAST - HOST_TSD_FIRST + 1));
    CHECK_EQ(b.store.written, b.store.stored + b.store.acked + b.store.dropped);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 11);
    CHECK(!is_all_ram_empty());
}

void test_shutdown_flush_with_cancel(void) {
    /* process_power.c:212-244: ignition off -> flush, poll until 101; ignition back on -> cancel */
    uint32_t now = 0, polls = 0;
    uint8_t p;
    bool cancelled = false;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    hal_sample_all(1);
    CHECK_EQ(get_flush_progress(), 101); /* nothing requested */
    flush_all_to_disk();
    for (;;) {
        now += 100;
        process_memory(now);
        p = get_flush_progress();
        CHECK(p <= 101);
        polls++;
        if (!cancelled && polls == 1) {
            cancel_memory_flush(); /* ignition back on in the middle */
            CHECK_EQ(spool_last_status(), SPOOL_OK);
            cancelled = true;
            hal_sample_all(2);
            flush_all_to_disk(); /* ignition off again */
            continue;
        }
        if (p == 101 || polls > 100000) break;
    }
    CHECK_EQ(p, 101);
    CHECK(cancelled);
    /* RAM-only build: nothing to flush to, so the data stays in RAM (not lost while powered) */
    CHECK_EQ(is_all_ram_empty(), false);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 2);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

void test_shutdown_flush_with_cancel_on_flash(void) {
    /* The same shutdown sequence with a NOR flash region (spool_flash_t callbacks): the
     * flush really moves the data, polled to 101 with a cancel in the middle; then a power
     * cut (boot again on the same flash bytes) and the uploader gets exactly the records,
     * in order. */
    enum { FIRST = 500, MORE = 50, NTSD = HOST_TSD_LAST - HOST_TSD_FIRST + 1 };
    spool_flash_t fl;
    spool_storage_stats_t ss;
    uint32_t now = 0, polls = 0, i, v, recovered = 0, wrong = 0;
    uint16_t e;
    uint8_t p = 0, first = 0, last = 0;
    fw_flash_wipe();
    fl = fw_flash();
    CHECK_EQ(fw_boot_with(0, &fl), SPOOL_OK);
    for (i = 1; i <= FIRST; i++) hal_sample_all(i);
    CHECK_EQ(get_flush_progress(), 101); /* nothing requested */
    flush_all_to_disk();
    for (;;) {
        p = get_flush_progress(); /* each poll (and each process_memory) moves one batch */
        CHECK_EQ(spool_last_status(), SPOOL_OK);
        polls++;
        if (polls == 1) {
            first = p;
            cancel_memory_flush(); /* ignition back on in the middle */
            CHECK_EQ(spool_last_status(), SPOOL_OK);
            CHECK(!is_all_ram_empty());
            for (i = FIRST + 1; i <= FIRST + MORE; i++) hal_sample_all(i);
            flush_all_to_disk(); /* ignition off again */
            continue;
        }
        if (p == 101 || polls > 1000) break;
        CHECK(p >= last && p <= 100);
        last = p;
        now += 100;
        process_memory(now); /* the main loop runs meanwhile */
    }
    CHECK(first < 101);
    CHECK_EQ(p, 101);
    CHECK(is_all_ram_empty()); /* everything is on flash now: safe to power off */
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, FIRST + MORE);
    CHECK_EQ(spool_storage_stats(&ss), SPOOL_OK);
    CHECK_EQ(ss.kind, SPOOL_STORAGE_FLASH);
    CHECK_EQ(ss.in_storage, (FIRST + MORE) * NTSD);
    CHECK_EQ(spool_check(), SPOOL_OK);
    /* Power cut, boot again on the same flash bytes. */
    CHECK_EQ(fw_boot_with(0, &fl), SPOOL_OK);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 0); /* not recovered yet */
    CHECK_EQ(spool_recover(&recovered), SPOOL_OK);
    CHECK_EQ(recovered, (FIRST + MORE) * NTSD);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, FIRST + MORE);
    /* The uploader drains every entry: values 1..FIRST+MORE, in order. */
    for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST; e++) {
        for (i = 1; i <= FIRST + MORE; i++) {
            v = 0;
            read_tsd_evt(host_csb, host_csd, e, &v);
            if (v != i || spool_last_status() != SPOOL_OK) wrong++;
        }
        CHECK_EQ(host_csd[e].no_pending, FIRST + MORE);
        erase_tsd_evt(host_csb, host_csd, e);
        CHECK_EQ(host_csd[e].no_samples, 0);
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
    CHECK_EQ(g_fw_flash_counters.violations, 0);
    CHECK(g_fw_flash_counters.programs > 0 && g_fw_flash_counters.erases > 0);
    printf("     flash: first poll %u %%, %u polls, %u records recovered, %u programs, %u erases\n",
           (unsigned)first, (unsigned)polls, (unsigned)recovered, (unsigned)g_fw_flash_counters.programs,
           (unsigned)g_fw_flash_counters.erases);
    spool_deinit();
}

void test_hostile_from_c(void) {
    uint32_t v = 0xDEADBEEFu;
    spool_stats_t a, b;
    static imx_control_sensor_block_t other_csb[2];
    static control_sensor_data_t other_csd[2];
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    hal_sample_all(1);
    CHECK_EQ(spool_stats(&a), SPOOL_OK);
    write_tsd_evt(NULL, host_csd, 0, 1, false);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_NULL);
    write_tsd_evt(other_csb, other_csd, 0, 1, false);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_NOT_REGISTERED);
    read_tsd_evt(host_csb, host_csd, NO_HOST, &v);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_INDEX);
    CHECK_EQ(v, 0xDEADBEEFu);
    revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST + 1);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_INDEX);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, 0, 65535), SPOOL_ERR_ACK_TOO_MANY);
    CHECK_EQ(spool_init(NULL), SPOOL_ERR_NULL);
    CHECK_EQ(spool_stats(&b), SPOOL_OK);
    /* field by field: spool_store_stats_t has padding after sectors_total (u64 alignment),
     * whose bytes memcmp would compare too (they differ on 32-bit targets) */
    CHECK_EQ(a.store.sensors, b.store.sensors);
    CHECK_EQ(a.store.sectors_used, b.store.sectors_used);
    CHECK_EQ(a.store.sectors_total, b.store.sectors_total);
    CHECK_EQ(a.store.stored, b.store.stored);
    CHECK_EQ(a.store.pending, b.store.pending);
    CHECK_EQ(a.store.written, b.store.written);
    CHECK_EQ(a.store.acked, b.store.acked);
    CHECK_EQ(a.store.dropped, b.store.dropped);
    CHECK_EQ(a.store.refused, b.store.refused);
    CHECK_EQ(b.ffi.rejected_null, a.ffi.rejected_null + 2);
    CHECK_EQ(b.ffi.rejected_not_registered, a.ffi.rejected_not_registered + 1);
    CHECK_EQ(b.ffi.rejected_index, a.ffi.rejected_index + 2);
    CHECK_EQ(b.ffi.store_errors, a.ffi.store_errors + 1);
    spool_deinit();
    write_tsd_evt(host_csb, host_csd, 0, 1, false);
    CHECK_EQ(spool_last_status(), SPOOL_ERR_NOT_INITIALIZED);
    CHECK_EQ(get_flush_progress(), 101);
    CHECK(is_all_ram_empty());
}

void test_native_api_and_pool(void) {
    spool_sensor_t h;
    spool_record_t r;
    spool_sensor_stats_t ss;
    spool_tier_stats_t tiers[SPOOL_POOL_TIERS];
    void *blk = NULL;
    uint8_t *p;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    CHECK_EQ(spool_sensor_open(7, 42, 0, &h), SPOOL_OK);
    CHECK_EQ(spool_write(h, 11, 1700000000123ull), SPOOL_OK);
    CHECK_EQ(spool_write(h, 12, 1700000000456ull), SPOOL_OK);
    CHECK_EQ(spool_read(h, &r), SPOOL_OK);
    CHECK_EQ(r.value, 11);
    CHECK_EQ(r.kind, SPOOL_KIND_EVT);
    CHECK_EQ(r.time_ms, 1700000000000ull); /* EVT times are kept in whole seconds */
    CHECK_EQ(spool_ack(h, 2), SPOOL_ERR_ACK_TOO_MANY);
    CHECK_EQ(spool_revert(h), SPOOL_OK);
    CHECK_EQ(spool_read(h, &r), SPOOL_OK);
    CHECK_EQ(r.value, 11);
    CHECK_EQ(spool_ack(h, 1), SPOOL_OK);
    CHECK_EQ(spool_sensor_stats(h, &ss), SPOOL_OK);
    CHECK_EQ(ss.stored, 1);
    CHECK_EQ(ss.pending, 0);
    CHECK_EQ(ss.kind, SPOOL_KIND_EVT);
    /* C pool */
    CHECK_EQ(spool_pool_stats(tiers, SPOOL_POOL_TIERS), SPOOL_OK);
    CHECK_EQ(tiers[0].in_use, 0);
    CHECK_EQ(spool_pool_alloc(200, &blk), SPOOL_OK);
    p = (uint8_t *)blk;
    memset(p, 0x5A, 200);
    CHECK_EQ(spool_pool_stats(tiers, SPOOL_POOL_TIERS), SPOOL_OK);
    CHECK_EQ(tiers[0].in_use, 1);
    CHECK_EQ(spool_pool_free(p + 1), SPOOL_ERR_FOREIGN_PTR);
    CHECK_EQ(spool_pool_free(p), SPOOL_OK);
    CHECK_EQ(spool_pool_free(p), SPOOL_ERR_DOUBLE_FREE);
    CHECK_EQ(spool_pool_alloc(1u << 20, &blk), SPOOL_ERR_TOO_LARGE);
    CHECK_EQ(spool_pool_check(), SPOOL_OK);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ABI 3: EVT reads fill {utc, value} by default (above, fw_boot(0)); one word is the
 * opt-in SPOOL_CFG_EVT_READ_ONE_WORD; a firmware built against ABI 2 keeps its one-word
 * default; both flags together are refused. */
void test_evt_read_width(void) {
    uint32_t w[2];
    spool_config_t cfg;
    CHECK_EQ(fw_boot(SPOOL_CFG_EVT_READ_ONE_WORD), SPOOL_OK);
    write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 77, 1700000123u);
    w[0] = w[1] = 0xA5A5A5A5u;
    read_tsd_evt(host_csb, host_csd, HOST_EVENT, w);
    CHECK_EQ(w[0], 77);
    CHECK_EQ(w[1], 0xA5A5A5A5u);
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 78, 1700000124u);
    w[0] = w[1] = 0xA5A5A5A5u;
    read_tsd_evt(host_csb, host_csd, HOST_EVENT, w);
    CHECK_EQ(w[0], 1700000124u);
    CHECK_EQ(w[1], 78);
    spool_deinit();
    CHECK_EQ(spool_config_default(&cfg), SPOOL_OK);
    CHECK_EQ(cfg.abi_version, SPOOL_ABI_VERSION);
    CHECK_EQ(SPOOL_ABI_VERSION, 3);
    cfg.flags = SPOOL_CFG_EVT_READ_ONE_WORD | SPOOL_CFG_EVT_READ_TWO_WORDS;
    CHECK_EQ(spool_init(&cfg), SPOOL_ERR_INVALID_ARGUMENT);
    cfg.abi_version = 2;
    cfg.flags = SPOOL_CFG_EVT_READ_ONE_WORD;
    CHECK_EQ(spool_init(&cfg), SPOOL_ERR_INVALID_ARGUMENT);
    cfg.flags = 0;
    CHECK_EQ(spool_init(&cfg), SPOOL_OK);
    {
        spool_layout_t l = fw_layout();
        CHECK_EQ(spool_register_sensors(host_csb, host_csd, NO_HOST, &l, SOURCE_GATEWAY), SPOOL_OK);
    }
    write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 79, 1700000125u);
    w[0] = w[1] = 0xA5A5A5A5u;
    read_tsd_evt(host_csb, host_csd, HOST_EVENT, w);
    CHECK_EQ(w[0], 79);
    CHECK_EQ(w[1], 0xA5A5A5A5u);
    spool_deinit();
}

/* Items 1 and 2 of "Drop-in for real iMatrix firmware", from C:
 * (1) a write to one sensor that overflows RAM and drops another sensor's records updates
 *     that other sensor's no_samples, so the README upload loop reads real records only
 *     and its atomic_erase_records() succeeds;
 * (2) the validation idiom (read k, then no_pending -= k) un-reads: the upload reads the
 *     same records again and the ACK erases exactly those; a raised no_pending is refused. */
void test_mirror_refresh_and_unread(void) {
    const uint16_t a = HOST_TSD_FIRST, b = HOST_TSD_FIRST + 1, c = HOST_TSD_FIRST + 2;
    uint32_t n0 = 0, n1 = 0, v, k, wrong = 0, dropped, first;
    uint16_t n;
    spool_stats_t st;
    spool_mirror_stats_t ms;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    while (st.store.sectors_used * 2u < st.store.sectors_total) {
        write_tsd_evt_time(host_csb, host_csd, a, ++n0, 1700000000u);
        CHECK_EQ(spool_stats(&st), SPOOL_OK);
    }
    while (st.store.dropped == 0 && n1 < 100000u) {
        write_tsd_evt_time(host_csb, host_csd, b, ++n1, 1700000000u);
        read_tsd_evt(host_csb, host_csd, b, &v); /* b: everything pending, never the victim */
        CHECK_EQ(spool_stats(&st), SPOOL_OK);
    }
    dropped = (uint32_t)st.store.dropped;
    CHECK(dropped > 0);
    CHECK_EQ(host_csd[a].no_samples, n0 - dropped); /* the victim's mirror followed */
    CHECK_EQ(host_csd[b].no_samples, n1);
    /* README upload loop on the victim */
    n = (uint16_t)(host_csd[a].no_samples - host_csd[a].no_pending);
    first = dropped + 1;
    for (k = 0; k < n; k++) {
        v = 0;
        read_tsd_evt(host_csb, host_csd, a, &v);
        if (v != first + k) wrong++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, a, n), SPOOL_OK);
    CHECK_EQ(host_csd[a].no_samples, 0);
    /* (2) validation reads, then no_pending -= 5 */
    for (v = 1; v <= 10; v++) write_tsd_evt_time(host_csb, host_csd, c, 1000u + v, 1700000000u);
    for (k = 0; k < 5; k++) read_tsd_evt(host_csb, host_csd, c, &v);
    CHECK_EQ(v, 1005);
    host_csd[c].no_pending -= 5;
    for (k = 0; k < 4; k++) {
        read_tsd_evt(host_csb, host_csd, c, &v);
        if (v != 1001 + k) wrong++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, c, 4), SPOOL_OK);
    CHECK_EQ(host_csd[c].no_samples, 6);
    read_tsd_evt(host_csb, host_csd, c, &v);
    CHECK_EQ(v, 1005); /* un-read, not erased */
    /* a raise is refused: nothing more becomes erasable */
    host_csd[c].no_pending = 5;
    CHECK_EQ(atomic_erase_records(host_csb, host_csd, c, 2), SPOOL_ERR_ACK_TOO_MANY);
    CHECK_EQ(host_csd[c].no_pending, 1);
    CHECK_EQ(spool_mirror_stats(&ms), SPOOL_OK);
    CHECK_EQ(ms.pending_lowered, 1);
    CHECK_EQ(ms.records_unread, 5);
    CHECK_EQ(ms.pending_refused, 1);
    CHECK(ms.refreshes > 0);
    CHECK_EQ(spool_check(), SPOOL_OK);
    spool_deinit();
}
