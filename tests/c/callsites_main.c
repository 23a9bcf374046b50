/* Runner of the call-site suite (tests/c/callsites.c) on the host: one line per test and
 * `N passed, N failed` last. */
#include "harness.h"

int g_check_failures;

spool_flash_t callsite_flash(void) { return fw_flash(); }
void callsite_flash_wipe(void) { fw_flash_wipe(); }

int main(void) {
    unsigned i, passed = 0, failed = 0;
    for (i = 0; i < g_callsite_test_count; i++) {
        int before = g_check_failures;
        g_callsite_tests[i].fn();
        if (g_check_failures == before) {
            passed++;
            printf("ok   %s\n", g_callsite_tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", g_callsite_tests[i].name);
        }
        fflush(stdout);
    }
    spool_deinit();
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
