/*
 * The public MM1 and MM2 prototypes exactly as the iMatrix API facts reference quotes them
 * (sections 3 and 5; `imx_get_total_sample_count` has no published prototype and is
 * written from its call shape). Included after sensor_spool.h: a prototype that does not
 * match the generated one is a compile error ("conflicting types"), so this file pins the
 * header to MM1's and MM2's source-level API. Needs the iMatrix common.h types
 * (tests/c/common.h with SPOOL_HAVE_IMATRIX_COMMON, or imatrix_compat.h).
 */
#ifndef TEST_PROTOTYPES_H
#define TEST_PROTOTYPES_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MM1 (section 3) */
void imx_sat_init(void);
void init_ext_memory(uint32_t ext_sram_size);
void init_disk_storage_system(void);
void perform_power_failure_recovery(void);
void process_memory(imx_time_t current_time);
void flush_all_to_disk(void);
uint8_t get_flush_progress(void);
bool is_all_ram_empty(void);
void cancel_memory_flush(void);
uint32_t get_pending_disk_write_count(void);
bool is_disk_usage_acceptable(void);
void write_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry, uint32_t value, bool add_gps_location);
void write_tsd_evt_time(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry, uint32_t value, uint32_t utc_time);
void read_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry, uint32_t *value);
void erase_tsd_evt(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t entry);
void erase_tsd_evt_pending_data(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t no_items);
void revert_tsd_evt_pending_data(imx_control_sensor_block_t *csb, control_sensor_data_t *csd, uint16_t no_items);
void reset_csd_entry(control_sensor_data_t *csd, uint16_t entry);
void imx_init_data_store_entry(data_store_info_t *ds);
void imx_init_memory_statistics(void);
void imx_update_memory_statistics(void);
imx_memory_statistics_t* imx_get_memory_statistics(void);
uint32_t imx_calculate_fragmentation_level(void);
void imx_print_memory_statistics(void);
void cli_memory_stats(uint16_t arg);

/* MM2 (section 5) */
imx_result_t imx_memory_manager_init(uint32_t pool_size);
int imx_memory_manager_ready(void);
imx_result_t imx_memory_manager_shutdown(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, uint32_t timeout_ms);
imx_result_t imx_configure_sensor(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_activate_sensor(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_deactivate_sensor(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_recover_sensor_disk_data(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t process_memory_manager(imx_time_t current_time);
void imx_power_event_detected(void);
imx_result_t imx_set_utc_available(int utc_available);
imx_utc_time_ms_t mm2_get_utc_time_ms(void);
imx_result_t imx_write_tsd(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, imx_data_32_t value);
imx_result_t imx_write_evt(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, imx_data_32_t value, imx_utc_time_ms_t utc_time_ms);
imx_result_t imx_write_event_with_gps(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* event_csb, control_sensor_data_t* event_csd, imx_data_32_t event_value);
imx_result_t imx_write_gps_location(imatrix_upload_source_t upload_source, imx_utc_time_ms_t event_time);
imx_result_t imx_init_gps_config_for_source(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb_array, control_sensor_data_t* csd_array, uint16_t no_sensors, uint16_t lat_entry, uint16_t lon_entry, uint16_t altitude_entry, uint16_t speed_entry);
uint32_t imx_get_new_sample_count(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_read_bulk_samples(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, tsd_evt_value_t* array, uint32_t array_size, uint32_t requested_count, uint16_t* filled_count);
imx_result_t imx_read_next_tsd_evt(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, tsd_evt_data_t* data_out);
imx_result_t imx_peek_next_tsd_evt(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, uint32_t record_index, tsd_evt_data_t* data_out);
imx_result_t imx_erase_all_pending(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_revert_all_pending(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
bool imx_has_pending_data(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_get_memory_stats(mm2_stats_t* stats_out);
uint32_t imx_get_total_sample_count(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
imx_result_t imx_get_sensor_state(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd, mm2_sensor_state_t* state_out);
imx_result_t imx_validate_sector_chains(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);
uint32_t imx_force_garbage_collection(imatrix_upload_source_t upload_source, imx_control_sensor_block_t* csb, control_sensor_data_t* csd);

#ifdef __cplusplus
}
#endif

#endif
