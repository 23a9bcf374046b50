/*
 * Stand-in for the firmware's iMatrix common.h, written from the documented field lists
 * (MM1-era structs; the MM2-era imx_result_t / imatrix_upload_source_t enums). The real
 * firmware keeps its own definitions; sensor_spool.h only forward-declares the struct tags
 * and, when SPOOL_HAVE_IMATRIX_COMMON is defined, declares the MM2 façade with these types.
 *
 * imx_result_t is numbered here UNLIKE include/imatrix_compat.h (only IMX_SUCCESS and
 * IMX_NO_DATA agree), as a firmware's own enum may be: the C suites pass these numbers to
 * spool_imx_set_codes and check that the MM2 calls return them.
 */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#define IMX_CONTROL_SENSOR_NAME_LENGTH 32
#define WARNING_LEVELS 3

typedef uint32_t imx_time_t;        /* ms since boot */
typedef uint32_t imx_utc_time_t;    /* UTC seconds */
typedef uint64_t imx_utc_time_ms_t; /* UTC ms */

#ifdef LINUX_PLATFORM
typedef uint32_t platform_sector_t;
#else
typedef uint16_t platform_sector_t;
#endif

typedef struct var_data_entry var_data_entry_t;

typedef union data_32 {
    uint32_t uint_32bit;
    int32_t int_32bit;
    float float_32bit;
    var_data_entry_t *var_data;
} imx_data_32_t;

typedef enum imx_result {
    IMX_SUCCESS = 0,
    IMX_INVALID_ENTRY = 3,
    IMX_GENERAL_FAILURE = 9,
    IMX_INIT_ERROR = 10,
    IMX_OUT_OF_MEMORY = 16,
    IMX_NO_DATA = 34,
    IMX_ERROR = 39,
    IMX_INVALID_PARAMETER = 42,
    IMX_TIMEOUT = 43,
    IMX_FILE_ERROR = 54,
    IMX_LAST_ERROR
} imx_result_t;

typedef enum imatrix_upload_source {
    IMX_UPLOAD_GATEWAY = 0,
    IMX_HOSTED_DEVICE,
    IMX_UPLOAD_BLE_DEVICE,
#ifdef CAN_PLATFORM
    IMX_UPLOAD_CAN_DEVICE,
#endif
    IMX_UPLOAD_NO_SOURCES
} imatrix_upload_source_t;

typedef struct _data_store_info {
    platform_sector_t start_sector;
    platform_sector_t end_sector;
    uint16_t start_index;
    uint16_t count;
} data_store_info_t;

typedef struct control_sensor_block {
    char name[IMX_CONTROL_SENSOR_NAME_LENGTH];
    uint32_t id;
    uint32_t sample_rate; /* ms; 0 => event-driven (EVT) */
    uint32_t poll_rate;
    uint16_t sample_batch_size;
    uint16_t percent_change_to_send;
    unsigned int enabled : 1, read_only : 1, send_on_percent_change : 1, data_type : 2,
        use_warning_level_low : 3, use_warning_level_high : 3, set_default : 1, send_imatrix : 1,
        reserved : 19;
    imx_data_32_t default_value;
    imx_data_32_t warning_level_low[WARNING_LEVELS];
    imx_data_32_t warning_level_high[WARNING_LEVELS];
} imx_control_sensor_block_t;

typedef struct control_sensor_data {
    imx_utc_time_ms_t last_sample_time;
    uint16_t no_samples;
    uint16_t no_pending;
    uint32_t errors;
    imx_time_t last_poll_time;
    imx_time_t condition_started_time;
    imx_data_32_t last_raw_value;
    imx_data_32_t last_value;
    data_store_info_t ds;
    unsigned int error : 8;
    unsigned int last_error : 8;
    unsigned int update_now : 1;
    unsigned int warning : 2;
    unsigned int last_warning : 2;
    unsigned int percent_changed : 1;
    unsigned int active : 1;
    unsigned int valid : 1;
    unsigned int sent_first_reading : 1;
    unsigned int sensor_auto_updated : 1;
    unsigned int reset_max_value : 1;
    unsigned int reserved : 5;
} control_sensor_data_t;

/* The legacy prototypes as the firmware's own memory_manager_tsd_evt.h declares them,
 * with the typedef names: they must be compatible with sensor_spool.h's. */
#ifdef __cplusplus
extern "C" {
#endif
void write_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry,
                   uint32_t value, bool add_gps_location);
void write_tsd_evt_time(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                        uint16_t entry, uint32_t value, uint32_t utc_time);
void read_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry,
                  uint32_t *value);
void erase_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry);
void revert_tsd_evt_pending_data(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                                 uint16_t no_items);
void erase_tsd_evt_pending_data(imx_control_sensor_block_t *csb, control_sensor_data_t *csd,
                                uint16_t no_items);
void imx_init_data_store_entry(data_store_info_t *ds);
void reset_csd_entry(control_sensor_data_t *csd, uint16_t entry);
void process_memory(imx_time_t current_time);
void flush_all_to_disk(void);
uint8_t get_flush_progress(void);
bool is_all_ram_empty(void);
void cancel_memory_flush(void);
#ifdef __cplusplus
}
#endif

#endif
