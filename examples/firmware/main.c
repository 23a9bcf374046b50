/*
 * On-target test runner: the shared C test suite (tests/c/fw.c + tests/c/replay.c, the
 * legacy call-site replays, compiled unchanged) plus tests that only make sense on a
 * microcontroller: a timer interrupt writing through the legacy API while the main loop
 * uploads (the firmware's own critical-section hooks), the interrupt state being restored
 * by every call, NorFlashStorage on a RAM-backed flash region inside the firmware (threshold
 * spill, shutdown flush, recovery after a power cycle: flash.c), and the stack depth of
 * every public entry point (stack painting), flash paths included.
 * Prints one line per test and `N passed, N failed` last; the exit status is the result.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flash.h"
#include "harness.h"
#include "platform.h"

int g_check_failures;

typedef struct {
    const char *name;
    void (*fn)(void);
} test_t;

/* ---- interrupt writer vs. main-loop uploader ---------------------------------------- */

#define ISR_ENTRY HOST_TSD_FIRST
#define MAIN_ENTRY (HOST_TSD_FIRST + 1)
#define ISR_WRITES 1500u
#define MAIN_WRITES 100u

static volatile uint32_t isr_seq, isr_ticks;

static void isr_writer(void) {
    isr_ticks++;
    if (isr_seq < ISR_WRITES) {
        isr_seq++;
        write_tsd_evt(host_csb, host_csd, ISR_ENTRY, isr_seq, false);
    }
}

static void test_isr_writer_vs_uploader(void) {
    uint32_t last = 0, first = 0, delivered = 0, order_errors = 0, main_writes = 0, loops = 0;
    spool_sensor_t h;
    spool_sensor_stats_t ss;
    spool_stats_t st;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    isr_seq = 0;
    isr_ticks = 0;
    platform_irqs_held_off = 0;
#if defined(__riscv)
    platform_tick_start(isr_writer, 700u); /* CLINT ticks at 10 MHz */
#else
    platform_tick_start(isr_writer, 3000u); /* core clock cycles */
#endif
    while (loops < 50000000u) {
        uint16_t avail, k, n = 0;
        loops++;
        /* a short locked call every iteration, so interrupts also arrive inside the library */
        (void)is_all_ram_empty();
        /* the main loop samples another sensor at the same time */
        if ((loops & 255u) == 0 && main_writes < MAIN_WRITES) {
            write_tsd_evt(host_csb, host_csd, MAIN_ENTRY, ++main_writes, false);
        }
        /* upload: read what the mirrors say is there (read without the lock, as MM1 did) */
        avail = (uint16_t)(host_csd[ISR_ENTRY].no_samples - host_csd[ISR_ENTRY].no_pending);
        for (k = 0; k < avail && k < 16; k++) {
            uint32_t v = 0;
            read_tsd_evt(host_csb, host_csd, ISR_ENTRY, &v);
            if (v == 0) break;
            if (v <= last) order_errors++;
            if (n == 0) first = v;
            last = v;
            n++;
        }
        if (n > 0) {
            /* NACK every 5th packet: everything read comes back */
            if ((loops % 5u) == 0) {
                revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST);
                last = first - 1; /* the packet's records come back, in order */
            } else {
                CHECK_EQ(atomic_erase_records(host_csb, host_csd, ISR_ENTRY, n), SPOOL_OK);
                delivered += n;
            }
        }
        if (isr_seq >= ISR_WRITES && host_csd[ISR_ENTRY].no_samples == 0) break;
    }
    platform_tick_stop();
    printf("  isr: %lu interrupts (%lu held off by the library's critical section), %lu ISR writes, "
           "%lu delivered, %lu main-loop writes, %lu loops\n",
           (unsigned long)isr_ticks, (unsigned long)platform_irqs_held_off, (unsigned long)isr_seq,
           (unsigned long)delivered, (unsigned long)main_writes, (unsigned long)loops);
    CHECK(platform_irqs_held_off > 0);
    CHECK_EQ(isr_seq, ISR_WRITES);
    CHECK_EQ(main_writes, MAIN_WRITES);
    CHECK_EQ(order_errors, 0);
    CHECK_EQ(spool_sensor_open(SOURCE_GATEWAY, host_csb[ISR_ENTRY].id, host_csb[ISR_ENTRY].sample_rate, &h),
             SPOOL_OK);
    CHECK_EQ(spool_sensor_stats(h, &ss), SPOOL_OK);
    CHECK_EQ(ss.stored, 0);
    CHECK_EQ(ss.lost, 0);
    CHECK_EQ(spool_stats(&st), SPOOL_OK);
    CHECK_EQ(st.store.written, ISR_WRITES + MAIN_WRITES);
    CHECK_EQ(st.store.acked, delivered);
    CHECK_EQ(st.store.written, st.store.acked + st.store.stored + st.store.dropped);
    CHECK_EQ(st.store.stored, MAIN_WRITES);
    CHECK_EQ(host_csd[MAIN_ENTRY].no_samples, main_writes);
    CHECK_EQ(spool_check(), SPOOL_OK);
}

/* ---- every call restores the interrupt state it found -------------------------------- */

static void test_irq_state_restored(void) {
    uint32_t outer, inner;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    /* interrupts off around library calls: still off afterwards */
    outer = spool_cs_acquire();
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 1, false);
    CHECK_EQ(spool_check(), SPOOL_OK);
    inner = spool_cs_acquire(); /* nested: reports "already masked" */
    spool_cs_release(inner);
    CHECK(inner != outer || outer != 0);
    spool_cs_release(outer);
    /* interrupts on: a call leaves them on (observed through the hook's return value) */
    write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 2, false);
    inner = spool_cs_acquire();
    spool_cs_release(inner);
    CHECK_EQ(inner, outer);
    CHECK_EQ(host_csd[HOST_TSD_FIRST].no_samples, 2);
}

/* ---- stack depth of the public entry points (stack painting) -------------------------- */

#define PAINT 0xC5A5C5A5u

static uint32_t worst_stack, worst_run_stack;
static const char *worst_name = "", *worst_run_name = "";

/* Paints the free stack below the caller, runs `fn`, and returns how deep it went. */
static uint32_t __attribute__((noinline)) stack_used(void (*fn)(void)) {
    uintptr_t sp = platform_sp() - 16u;
    volatile uint32_t *p;
    for (p = _sstack; (uintptr_t)p < sp; p++) *p = PAINT;
    fn();
    for (p = _sstack; (uintptr_t)p < sp && *p == PAINT; p++) {
    }
    return (uint32_t)(sp + 16u - (uintptr_t)p);
}

static void measure(const char *name, void (*fn)(void)) {
    uint32_t n = stack_used(fn);
    printf("  stack: %-30s %5lu bytes\n", name, (unsigned long)n);
    if (n > worst_stack) {
        worst_stack = n;
        worst_name = name;
    }
    /* the run-time path: everything but the set-up calls (init, deinit, registration) */
    if (strncmp(name, "spool_init", 10) != 0 && strncmp(name, "spool_deinit", 12) != 0 &&
        strncmp(name, "spool_register", 14) != 0 && n > worst_run_stack) {
        worst_run_stack = n;
        worst_run_name = name;
    }
}

static spool_sensor_t g_h;
static void *g_blk;
static spool_layout_t g_layout;
static spool_config_t g_cfg;
static spool_stats_t g_stats;
static spool_sensor_stats_t g_sstats;
static spool_record_t g_rec;
static spool_tier_stats_t g_tiers[SPOOL_POOL_TIERS];
static uint32_t g_val[2];

static void t_deinit(void) { spool_deinit(); }
static void t_config_default(void) { spool_config_default(&g_cfg); }
static void t_init(void) { spool_init(&g_cfg); }
static void t_register(void) { spool_register_sensors(host_csb, host_csd, NO_HOST, &g_layout, SOURCE_GATEWAY); }
static void t_write_full(void) { write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 7, false); }
static void t_write_gps(void) { write_tsd_evt(host_csb, host_csd, HOST_STOPPED, 1, true); }
static void t_write_time(void) { write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, 5, 1700000001u); }
static void t_read(void) { read_tsd_evt(host_csb, host_csd, HOST_EVENT, g_val); }
static void t_read_tsd(void) { read_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, g_val); }
static void t_erase(void) { erase_tsd_evt(host_csb, host_csd, HOST_EVENT); }
static void t_atomic_erase(void) { atomic_erase_records(host_csb, host_csd, HOST_TSD_FIRST, 2); }
static void t_revert(void) { revert_tsd_evt_pending_data(host_csb, host_csd, NO_HOST); }
static void t_erase_pending(void) { erase_tsd_evt_pending_data(host_csb, host_csd, NO_HOST); }
static void t_process_memory(void) { process_memory(1000); }
static void t_flush(void) { flush_all_to_disk(); }
static void t_progress(void) { (void)get_flush_progress(); }
static void t_cancel(void) { cancel_memory_flush(); }
static void t_ram_empty(void) { (void)is_all_ram_empty(); }
static void t_init_ds(void) { imx_init_data_store_entry(&host_csd[HOST_EVENT].ds); }
static void t_reset_csd(void) { reset_csd_entry(host_csd, HOST_TSD_LAST); }
static void t_open(void) { spool_sensor_open(9, 77, 0, &g_h); }
static void t_swrite(void) { spool_write(g_h, 3, 1700000000000ull); }
static void t_sread(void) { spool_read(g_h, &g_rec); }
static void t_sack(void) { spool_ack(g_h, 1); }
static void t_srevert(void) { spool_revert(g_h); }
static void t_sstats(void) { spool_sensor_stats(g_h, &g_sstats); }
static void t_stats(void) { spool_stats(&g_stats); }
static void t_check(void) { spool_check(); }
static void t_last_status(void) { (void)spool_last_status(); }
static void t_pool_alloc(void) { spool_pool_alloc(100, &g_blk); }
static void t_pool_free(void) { spool_pool_free(g_blk); }
static void t_pool_stats(void) { spool_pool_stats(g_tiers, SPOOL_POOL_TIERS); }
static void t_pool_check(void) { spool_pool_check(); }
static uint32_t g_recovered;
static void t_boot_flash(void) { fw_boot_flash(0); }
static void t_recover(void) { spool_recover(&g_recovered); }
static void t_process_spill(void) { process_memory(2000); }
static spool_storage_stats_t g_sto;
static uint32_t g_batches;
/* Writes until a write spills (RAM full: within one sector's worth of records). */
static void t_write_until_spill(void) {
    uint32_t k;
    for (k = 0; k < 16u; k++) {
        write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 7, false);
        if (spool_storage_stats(&g_sto) != SPOOL_OK || g_sto.batches != g_batches) break;
    }
}

static void test_stack_depth(void) {
    uint32_t i;
    CHECK_EQ(fw_boot(0), SPOOL_OK);
    g_layout = fw_layout();
    measure("spool_deinit", t_deinit);
    measure("spool_config_default", t_config_default);
    g_cfg.flags = 0; /* ABI 3: EVT reads fill {utc, value} by default */
    measure("spool_init", t_init);
    measure("spool_register_sensors", t_register);
    CHECK_EQ(spool_register_sensors(can_csb, can_csd, NO_CAN, &g_layout, SOURCE_CAN), SPOOL_OK);
    CHECK_EQ(fw_boot(0), SPOOL_OK); /* with GPS configured */
    /* fill RAM until the store drops the oldest data: the deepest write path */
    for (i = 0; i < 4000u; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i + 1, false);
    for (i = 0; i < 40u; i++) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, i + 1, 1700000000u + i);
    measure("write_tsd_evt (store full)", t_write_full);
    measure("write_tsd_evt (GPS co-log)", t_write_gps);
    measure("write_tsd_evt_time", t_write_time);
    measure("read_tsd_evt (EVT)", t_read);
    measure("read_tsd_evt (TSD)", t_read_tsd);
    t_read_tsd();
    measure("atomic_erase_records", t_atomic_erase);
    measure("erase_tsd_evt", t_erase);
    t_read();
    t_read_tsd();
    measure("revert_tsd_evt_pending_data", t_revert);
    t_read();
    t_read_tsd();
    measure("erase_tsd_evt_pending_data", t_erase_pending);
    measure("process_memory", t_process_memory);
    measure("flush_all_to_disk", t_flush);
    measure("get_flush_progress", t_progress);
    measure("cancel_memory_flush", t_cancel);
    measure("is_all_ram_empty", t_ram_empty);
    measure("imx_init_data_store_entry", t_init_ds);
    measure("reset_csd_entry", t_reset_csd);
    measure("spool_sensor_open", t_open);
    measure("spool_write", t_swrite);
    t_swrite();
    measure("spool_read", t_sread);
    measure("spool_revert", t_srevert);
    t_sread();
    measure("spool_ack", t_sack);
    measure("spool_sensor_stats", t_sstats);
    measure("spool_stats", t_stats);
    measure("spool_check (store full)", t_check);
    measure("spool_last_status", t_last_status);
    measure("spool_pool_alloc", t_pool_alloc);
    measure("spool_pool_stats", t_pool_stats);
    measure("spool_pool_free", t_pool_free);
    measure("spool_pool_check", t_pool_check);
    /* the flash paths (NorFlashStorage over the firmware's RAM-backed region) */
    fw_flash_format();
    CHECK_EQ(fw_boot_flash(0), SPOOL_OK);
    /* RAM at 80 %: process_memory spills one batch */
    for (i = 0; i < 40u; i++) write_tsd_evt_time(host_csb, host_csd, HOST_EVENT, i + 1, 1700000000u + i);
    for (i = 0; i < 2000u; i++) write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, i + 1, false);
    measure("process_memory (spill batch)", t_process_spill);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    /* RAM full: the write spills (the flash region is full by then: the oldest sector is
     * evicted, the deepest write path) */
    for (i = 0; i < 4000u && spool_stats(&g_stats) == SPOOL_OK &&
                g_stats.store.sectors_used + 1u < g_stats.store.sectors_total;
         i++) {
        write_tsd_evt(host_csb, host_csd, HOST_TSD_FIRST, 7, false);
    }
    CHECK_EQ(spool_storage_stats(&g_sto), SPOOL_OK);
    g_batches = g_sto.batches;
    measure("write_tsd_evt (RAM full: spill)", t_write_until_spill);
    CHECK_EQ(spool_storage_stats(&g_sto), SPOOL_OK);
    CHECK(g_sto.batches > g_batches);
    CHECK_EQ(spool_last_status(), SPOOL_OK);
    t_read_tsd();
    measure("atomic_erase_records (flash)", t_atomic_erase);
    flush_all_to_disk();
    measure("get_flush_progress (flush step)", t_progress);
    while (get_flush_progress() != 101) {
    }
    measure("spool_init + registration (flash)", t_boot_flash);
    measure("spool_recover (flash)", t_recover);
    CHECK(g_recovered > 0);
    measure("read_tsd_evt (recovered, flash)", t_read_tsd);
    printf("  stack: worst run-time entry point: %s, %lu bytes\n", worst_run_name,
           (unsigned long)worst_run_stack);
    printf("  stack: worst public entry point: %s, %lu bytes\n", worst_name, (unsigned long)worst_stack);
    CHECK_EQ(spool_check(), SPOOL_OK);
    CHECK(worst_stack > 0);
    /* reported, not budgeted (see scripts/size-report.sh); it must not overflow the region */
    CHECK(worst_stack + 64u < (uint32_t)((uintptr_t)_estack - (uintptr_t)_sstack));
}

#if defined(__ARM_FP)
/* Cortex-M4F: the reset handler turned the FPU on (CPACR), else this faults (NOCP). */
static void test_fpu_enabled(void) {
    volatile float a = 1.5f, b = 2.25f;
    float c = a * b + g_position.latitude;
    CHECK(c > 48.894f && c < 48.896f);
}
#endif

#ifdef FW_FORCE_FAIL
/* Proof that a failing check fails the run: build with FW_CFLAGS=-DFW_FORCE_FAIL. */
static void test_forced_failure(void) { CHECK_EQ(spool_check(), SPOOL_ERR_CORRUPTED); }
#endif

/* ---- runner ------------------------------------------------------------------------------- */

int main(void) {
    static const test_t tests[] = {
        /* the shared C suite (tests/c/replay.c); its pthread test needs an OS and is
         * replaced on target by the interrupt test below */
        {"register_and_mirrors", test_register_and_mirrors},
        {"sampler_tsd (hal_sample.c)", test_sampler_tsd},
        {"event_with_gps (process_location_state.c)", test_event_with_gps},
        {"can_writer (can_event.c, can_utils.c)", test_can_writer},
        {"uploader_ack_nack_timeout (imatrix_upload.c)", test_uploader_ack_nack_timeout},
        {"patched_erase_idiom", test_patched_erase_idiom},
        {"process_memory_loop", test_process_memory_loop},
        {"shutdown_flush_with_cancel (process_power.c)", test_shutdown_flush_with_cancel},
        {"hostile_from_c", test_hostile_from_c},
        {"native_api_and_pool", test_native_api_and_pool},
        {"evt_read_width (ABI 3 two-word default, one-word opt-in, ABI 2)", test_evt_read_width},
        {"mirror_refresh_and_unread (cross-sensor drop, no_pending -= k)", test_mirror_refresh_and_unread},
        /* on-target only */
        {"flash_spill_at_threshold (RAM-backed NOR region)", test_flash_spill_at_threshold},
        {"flash_shutdown_flush_polled_to_101", test_flash_shutdown_flush},
        {"flash_power_cycle_recovery (exactly the unacknowledged records)", test_flash_power_cycle_recovery},
#if defined(__ARM_FP)
        {"fpu_enabled (hard-float ABI)", test_fpu_enabled},
#endif
        {"isr_writer_vs_uploader (timer interrupt)", test_isr_writer_vs_uploader},
        {"irq_state_restored", test_irq_state_restored},
        {"stack_depth_of_entry_points", test_stack_depth},
#ifdef FW_FORCE_FAIL
        {"forced_failure", test_forced_failure},
#endif
    };
    unsigned i, passed = 0, failed = 0;
    uintptr_t sp = platform_sp() - 64u;
    volatile uint32_t *p;
    uint32_t high_water;

    /* paint the whole free stack once for the suite's high-water mark */
    for (p = _sstack; (uintptr_t)p < sp; p++) *p = PAINT;
    printf("sensor-spool on-target C suite: %s\n", platform_name);
    {
        /* configured size of the C block pool (blocks + bitmap words), for the RAM budget */
        spool_tier_stats_t t[SPOOL_POOL_TIERS];
        uint32_t bytes = 0;
        unsigned k;
        if (spool_pool_stats(t, SPOOL_POOL_TIERS) == SPOOL_OK) {
            for (k = 0; k < SPOOL_POOL_TIERS; k++) {
                bytes += t[k].block_size * t[k].capacity + (t[k].capacity + 31u) / 32u * 4u;
                printf("  config: C pool tier %u: %lu x %lu bytes\n", k, (unsigned long)t[k].capacity,
                       (unsigned long)t[k].block_size);
            }
            printf("  config: C block pool %lu bytes\n", (unsigned long)bytes);
        }
    }
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = g_check_failures;
        if (tests[i].fn == test_stack_depth) {
            /* measure the suite's own high-water mark before the per-call painting */
            for (p = _sstack; (uintptr_t)p < sp && *p == PAINT; p++) {
            }
            high_water = (uint32_t)((uintptr_t)_estack - (uintptr_t)p);
            printf("  stack: high-water mark of the suite so far: %lu of %lu bytes\n",
                   (unsigned long)high_water, (unsigned long)((uintptr_t)_estack - (uintptr_t)_sstack));
        }
        tests[i].fn();
        /* the lowest words of the stack region stay painted unless the stack overflowed
         * (the region ends at .bss: an overflow corrupts the library's state) */
        if (_sstack[0] != PAINT || _sstack[1] != PAINT) {
            printf("  stack overflow: the stack region (%lu bytes) was exhausted\n",
                   (unsigned long)((uintptr_t)_estack - (uintptr_t)_sstack));
            g_check_failures++;
        }
        if (g_check_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
        fflush(stdout);
    }
#ifndef FW_NO_CALLSITES
    /* the MM1 / MM2 call-site suite (tests/c/callsites.c, compiled unchanged) */
    for (i = 0; i < g_callsite_test_count; i++) {
        int before = g_check_failures;
        g_callsite_tests[i].fn();
        if (_sstack[0] != PAINT || _sstack[1] != PAINT) {
            printf("  stack overflow: the stack region (%lu bytes) was exhausted\n",
                   (unsigned long)((uintptr_t)_estack - (uintptr_t)_sstack));
            g_check_failures++;
        }
        if (g_check_failures == before) {
            passed++;
            printf("ok   %s\n", g_callsite_tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", g_callsite_tests[i].name);
        }
        fflush(stdout);
    }
#endif
    spool_deinit();
    printf("%u passed, %u failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}
