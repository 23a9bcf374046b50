/* C test suite runner: prints one line per test and `N passed, N failed` last. */
#include "harness.h"

int g_check_failures;

typedef struct {
    const char *name;
    void (*fn)(void);
} test_t;

int main(void) {
    static const test_t tests[] = {
        {"register_and_mirrors", test_register_and_mirrors},
        {"sampler_tsd (hal_sample.c)", test_sampler_tsd},
        {"event_with_gps (process_location_state.c)", test_event_with_gps},
        {"can_writer (can_event.c, can_utils.c)", test_can_writer},
        {"uploader_ack_nack_timeout (imatrix_upload.c)", test_uploader_ack_nack_timeout},
        {"patched_erase_idiom", test_patched_erase_idiom},
        {"process_memory_loop", test_process_memory_loop},
        {"shutdown_flush_with_cancel (process_power.c)", test_shutdown_flush_with_cancel},
        {"shutdown_flush_with_cancel_on_flash + power cut + recovery", test_shutdown_flush_with_cancel_on_flash},
        {"hostile_from_c", test_hostile_from_c},
        {"native_api_and_pool", test_native_api_and_pool},
        {"threads (sampler, CAN, uploader, power)", test_threads},
        {"evt_read_width (ABI 3 two-word default, one-word opt-in, ABI 2)", test_evt_read_width},
        {"mirror_refresh_and_unread (cross-sensor drop, no_pending -= k)", test_mirror_refresh_and_unread},
    };
    unsigned i, passed = 0, failed = 0;
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = g_check_failures;
        tests[i].fn();
        if (g_check_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
        fflush(stdout);
    }
    spool_deinit();
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
