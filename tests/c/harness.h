/* Minimal test harness and the simulated firmware shared by the C suite. */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stdio.h>
#include "common.h"
#include "sensor_spool.h"

#ifdef __cplusplus
extern "C" {
#endif

extern int g_check_failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            g_check_failures++;                                                       \
            fprintf(stderr, "  check failed %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_) {                                                                  \
            g_check_failures++;                                                          \
            fprintf(stderr, "  check failed %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                           \
        }                                                                                \
    } while (0)

/* ---- the simulated firmware: gateway sensors (icb.i_scb / icb.i_sd) and a CAN controller */

/* Made-up ids for the internal GPS sensors (the real values are firmware constants). */
#define IMX_INTERNAL_SENSOR_GPS_LATITUDE 2
#define IMX_INTERNAL_SENSOR_GPS_LONGITUDE 3
#define IMX_INTERNAL_SENSOR_GPS_ALTITUDE 4
#define IMX_INTERNAL_SENSOR_VEHICLE_SPEED 5

enum {
    HOST_LAT = 0,     /* GPS entries come before the events that co-log them */
    HOST_LON,
    HOST_ALT,
    HOST_SPEED,
    HOST_TSD_FIRST,   /* periodic gateway sensors */
    HOST_TSD_LAST = HOST_TSD_FIRST + 3,
    HOST_STOPPED,     /* vehicle-stopped event (the one GPS = true caller) */
    HOST_EVENT,       /* generic hal_event sensor */
    NO_HOST
};

#define NO_CAN 17
#define UNKNOWN_CAN_BUS_ENTRY (NO_CAN - 1)

#define SOURCE_GATEWAY 0
#define SOURCE_CAN 4

typedef struct {
    imx_control_sensor_block_t *csb;
    control_sensor_data_t *csd;
    uint16_t no_items;
} icb_t;

extern imx_control_sensor_block_t host_csb[NO_HOST];
extern control_sensor_data_t host_csd[NO_HOST];
extern imx_control_sensor_block_t can_csb[NO_CAN];
extern control_sensor_data_t can_csd[NO_CAN];
extern spool_position_t g_position;
extern uint32_t g_utc_now;

/* spool_deinit + spool_init(flags) + both registrations + GPS; returns SPOOL_OK or the error. */
spool_status_t fw_boot(uint32_t flags);
/* fw_boot with a flash region (NULL: RAM only). Boot again = power cut: the library's RAM
 * is reset, the flash bytes stay. */
spool_status_t fw_boot_with(uint32_t flags, const spool_flash_t *flash);

#define FW_FLASH_SIZE (64u * 1024u)
#define FW_FLASH_ERASE 1024u
typedef struct {
    uint32_t programs, erases, violations;
} fw_flash_counters_t;
extern uint8_t g_fw_flash[FW_FLASH_SIZE];
extern fw_flash_counters_t g_fw_flash_counters;
spool_flash_t fw_flash(void);
void fw_flash_wipe(void);
spool_layout_t fw_layout(void);

/* Test entry points. */
void test_register_and_mirrors(void);
void test_sampler_tsd(void);
void test_event_with_gps(void);
void test_can_writer(void);
void test_uploader_ack_nack_timeout(void);
void test_patched_erase_idiom(void);
void test_process_memory_loop(void);
void test_shutdown_flush_with_cancel(void);
void test_shutdown_flush_with_cancel_on_flash(void);
void test_hostile_from_c(void);
void test_native_api_and_pool(void);
void test_threads(void);
void test_evt_read_width(void);
void test_mirror_refresh_and_unread(void);

/* The call-site suite (tests/c/callsites.c): MM1 and MM2 call shapes from the iMatrix API
 * facts; compiled as C99, C11 and C++17 and run on the host and in the QEMU firmware. */
typedef struct {
    const char *name;
    void (*fn)(void);
} callsite_test_t;
extern const callsite_test_t g_callsite_tests[];
extern const unsigned g_callsite_test_count;
/* The flash region the call-site suite boots on, and its erase: the host runner uses fw.c's
 * 64 KiB RAM part, the QEMU firmware its own (smaller) region. */
spool_flash_t callsite_flash(void);
void callsite_flash_wipe(void);

#ifdef __cplusplus
}
#endif

#endif
