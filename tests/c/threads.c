/*
 * Concurrency: sampler, CAN, uploader and power threads call the legacy API at the same
 * time (as the gateway's main loop, CAN decoder, CoAP uploader and power manager do).
 * At the end every count must balance exactly:
 *   write calls = written + refused,  written = delivered + still stored + dropped.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include "harness.h"

#define WRITES_PER_WRITER 500000u /* the two writers alone make 1,000,000 calls */
#define FIT 256u

static atomic_bool writers_done;
static atomic_ulong total_ops;

typedef struct {
    uint64_t write_calls;
    uint64_t ops;
} writer_result_t;

typedef struct {
    uint64_t delivered;
    uint64_t acks, nacks, timeouts;
    uint64_t order_errors, ack_errors, zero_reads;
    uint64_t ops;
    uint32_t last[2][NO_CAN];
    uint32_t seen[2][NO_CAN];
} uploader_result_t;

typedef struct {
    uint64_t flushes, cancels, ops, bad_progress;
} power_result_t;

/* Values per entry count up from 1, so the uploader can check order; 0 never occurs. */
static void *sampler_thread(void *arg) {
    writer_result_t *r = arg;
    uint32_t seq[NO_HOST];
    uint32_t n = 0;
    memset(seq, 0, sizeof seq);
    while (n < WRITES_PER_WRITER) {
        uint16_t e;
        for (e = HOST_TSD_FIRST; e <= HOST_TSD_LAST && n < WRITES_PER_WRITER; e++, n++) {
            write_tsd_evt(host_csb, host_csd, e, ++seq[e], false);
            r->write_calls++;
        }
        if (n % 256 == 0) sched_yield(); /* a sampler runs at a rate, not flat out */
        if (n < WRITES_PER_WRITER && n % 64 == 0) {
            write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, ++seq[HOST_EVENT], 1700000000u + n);
            r->write_calls++;
            n++;
        }
    }
    r->ops = r->write_calls;
    atomic_fetch_add(&total_ops, r->ops);
    return NULL;
}

static void *can_thread(void *arg) {
    writer_result_t *r = arg;
    uint32_t seq[NO_CAN];
    uint32_t n;
    memset(seq, 0, sizeof seq);
    for (n = 0; n < WRITES_PER_WRITER; n++) {
        uint16_t e = (uint16_t)(n % NO_CAN);
        uint32_t raw = ++seq[e];
        memcpy(&can_csd[e].last_value.uint_32bit, &raw, sizeof raw);
        write_tsd_evt(can_csb, can_csd, e, can_csd[e].last_value.uint_32bit, false);
        r->write_calls++;
        if (n % 256 == 0) sched_yield();
    }
    r->ops = r->write_calls;
    atomic_fetch_add(&total_ops, r->ops);
    return NULL;
}

static uint32_t read_one(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t i) {
    if (csb[i].sample_rate == 0) {
        struct {
            uint32_t utc;
            uint32_t value;
        } ev;
        ev.value = 0;
        read_tsd_evt(csb, csd, i, (uint32_t *)&ev);
        return ev.value;
    } else {
        uint32_t v = 0;
        read_tsd_evt(csb, csd, i, &v);
        return v;
    }
}

/* One upload cycle; returns the number of records in the packet. */
static uint32_t upload_cycle(uploader_result_t *r, unsigned outcome) {
    static uint16_t counts[2][NO_CAN];
    static uint32_t vals[2][NO_CAN][FIT];
    uint32_t total = 0;
    int t;
    uint16_t i, k;
    memset(counts, 0, sizeof counts);
    for (t = 0; t < 2; t++) {
        imx_control_sensor_block_t *csb = t ? can_csb : host_csb;
        control_sensor_data_t *csd = t ? can_csd : host_csd;
        uint16_t no_items = t ? NO_CAN : NO_HOST;
        for (i = 0; i < no_items && total < FIT; i++) {
            /* the legacy bound, from the mirrored counters (read without the lock, as MM1 did) */
            uint32_t avail = (uint32_t)(csd[i].no_samples - csd[i].no_pending);
            uint32_t n = FIT - total < avail ? FIT - total : avail;
            for (k = 0; k < n; k++) {
                uint32_t v = read_one(csb, csd, i);
                r->ops++;
                if (v == 0) { /* raced with a drop: nothing there after all */
                    r->zero_reads++;
                    break;
                }
                vals[t][i][counts[t][i]++] = v;
                total++;
            }
        }
    }
    for (t = 0; t < 2; t++) {
        imx_control_sensor_block_t *csb = t ? can_csb : host_csb;
        control_sensor_data_t *csd = t ? can_csd : host_csd;
        uint16_t no_items = t ? NO_CAN : NO_HOST;
        if (outcome != 0) { /* NACK or 30 s timeout: lossless rollback */
            revert_tsd_evt_pending_data(csb, csd, no_items);
            r->ops++;
            continue;
        }
        for (i = 0; i < no_items; i++) {
            if (!counts[t][i]) continue;
            if (atomic_erase_records(csb, csd, i, counts[t][i]) != SPOOL_OK) r->ack_errors++;
            r->ops++;
            for (k = 0; k < counts[t][i]; k++) {
                uint32_t v = vals[t][i][k];
                if (r->seen[t][i] && v <= r->last[t][i]) r->order_errors++;
                r->last[t][i] = v;
                r->seen[t][i]++;
                r->delivered++;
            }
        }
    }
    if (outcome == 0) r->acks++;
    else if (outcome == 1) r->nacks++;
    else r->timeouts++;
    return total;
}

static void *uploader_thread(void *arg) {
    uploader_result_t *r = arg;
    unsigned cycle = 0, idle = 0;
    for (;;) {
        bool done = atomic_load(&writers_done);
        /* mostly ACK; every 7th a NACK, every 13th a timeout */
        unsigned outcome = (cycle % 13 == 12) ? 2u : (cycle % 7 == 6) ? 1u : 0u;
        uint32_t n = upload_cycle(r, done ? 0u : outcome);
        cycle++;
        if (n == 0) sched_yield(); /* nothing to send: let the writers run */
        if (done && n == 0) {
            spool_stats_t s;
            if (spool_stats(&s) == SPOOL_OK && s.store.stored == 0) break;
            if (++idle > 100000) break; /* stuck: the final checks will say why */
        } else {
            idle = 0;
        }
    }
    atomic_fetch_add(&total_ops, r->ops);
    return NULL;
}

static void *power_thread(void *arg) {
    power_result_t *r = arg;
    uint32_t now = 0;
    while (!atomic_load(&writers_done)) {
        uint8_t p;
        unsigned polls = 0;
        now += 10;
        process_memory(now);
        (void)is_all_ram_empty();
        r->ops += 2;
        sched_yield(); /* the main loop runs at a rate, not flat out */
        if (now % 1000 == 0) { /* ignition off, then back on during the flush, then off */
            flush_all_to_disk();
            r->flushes++;
            r->ops++;
            for (;;) {
                process_memory(now);
                p = get_flush_progress();
                r->ops += 2;
                if (p > 101) r->bad_progress++;
                if (++polls == 1) { /* ignition back on after the first poll, then off again */
                    cancel_memory_flush();
                    r->cancels++;
                    flush_all_to_disk();
                    r->ops += 2;
                    continue;
                }
                if (p == 101 || polls >= 1000) break;
            }
            if (p != 101) r->bad_progress++;
        }
    }
    atomic_fetch_add(&total_ops, r->ops);
    return NULL;
}

void test_threads(void) {
    pthread_t ts, tc, tu, tp;
    writer_result_t sampler, can;
    uploader_result_t up;
    power_result_t pw;
    spool_stats_t s;
    uint64_t calls;
    memset(&sampler, 0, sizeof sampler);
    memset(&can, 0, sizeof can);
    memset(&up, 0, sizeof up);
    memset(&pw, 0, sizeof pw);
    atomic_store(&writers_done, false);
    atomic_store(&total_ops, 0);
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    CHECK_EQ(pthread_create(&tu, NULL, uploader_thread, &up), 0);
    CHECK_EQ(pthread_create(&tp, NULL, power_thread, &pw), 0);
    CHECK_EQ(pthread_create(&ts, NULL, sampler_thread, &sampler), 0);
    CHECK_EQ(pthread_create(&tc, NULL, can_thread, &can), 0);
    pthread_join(ts, NULL);
    pthread_join(tc, NULL);
    atomic_store(&writers_done, true);
    pthread_join(tp, NULL);
    pthread_join(tu, NULL);

    CHECK_EQ(spool_stats(&s), SPOOL_OK);
    calls = sampler.write_calls + can.write_calls;
    fprintf(stderr,
            "  threads: %lu ops; %llu write calls = %llu written + %llu refused; %llu written = "
            "%llu delivered + %llu stored + %llu dropped; %llu ACK / %llu NACK / %llu timeout "
            "packets; %llu flushes, %llu cancels\n",
            (unsigned long)atomic_load(&total_ops), (unsigned long long)calls,
            (unsigned long long)s.store.written, (unsigned long long)s.store.refused,
            (unsigned long long)s.store.written, (unsigned long long)up.delivered,
            (unsigned long long)s.store.stored, (unsigned long long)s.store.dropped,
            (unsigned long long)up.acks, (unsigned long long)up.nacks,
            (unsigned long long)up.timeouts, (unsigned long long)pw.flushes,
            (unsigned long long)pw.cancels);
    CHECK(atomic_load(&total_ops) >= 1000000ul);
    CHECK_EQ(calls, s.store.written + s.store.refused);
    CHECK_EQ(s.store.written, up.delivered + s.store.stored + s.store.dropped);
    CHECK_EQ(s.store.acked, up.delivered);
    CHECK_EQ(s.store.stored, 0);
    CHECK_EQ(s.store.pending, 0);
    CHECK_EQ(up.order_errors, 0);
    CHECK_EQ(up.ack_errors, 0);
    CHECK_EQ(pw.bad_progress, 0);
    CHECK(up.nacks > 0 && up.timeouts > 0 && up.acks > 0);
    CHECK(pw.cancels > 0 && pw.cancels == pw.flushes);
    CHECK_EQ(s.ffi.store_errors, s.store.refused);
    CHECK_EQ(s.ffi.rejected_null + s.ffi.rejected_index + s.ffi.rejected_not_registered, 0);
    CHECK(is_all_ram_empty());
    CHECK_EQ(spool_check(), SPOOL_OK);
}
