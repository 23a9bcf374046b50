/* The simulated firmware's sensor tables and boot sequence. */
#include <stddef.h>
#include <string.h>
#include "harness.h"

imx_control_sensor_block_t host_csb[NO_HOST];
control_sensor_data_t host_csd[NO_HOST];
imx_control_sensor_block_t can_csb[NO_CAN];
control_sensor_data_t can_csd[NO_CAN];
spool_position_t g_position = {45.52f, -122.68f, 50.0f, 0.0f};
uint32_t g_utc_now = 1700000000u;

static uint32_t fw_utc_now(void) { return g_utc_now; }

static bool fw_position(void *ctx, spool_position_t *out) {
    *out = *(const spool_position_t *)ctx;
    return true;
}

spool_layout_t fw_layout(void) {
    spool_layout_t l;
    l.csb_size = sizeof(imx_control_sensor_block_t);
    l.csb_id_offset = offsetof(imx_control_sensor_block_t, id);
    l.csb_sample_rate_offset = offsetof(imx_control_sensor_block_t, sample_rate);
    l.csd_size = sizeof(control_sensor_data_t);
    l.csd_no_samples_offset = offsetof(control_sensor_data_t, no_samples);
    l.csd_no_pending_offset = offsetof(control_sensor_data_t, no_pending);
    l.csd_last_sample_time_offset = offsetof(control_sensor_data_t, last_sample_time);
    l.csd_last_sample_time_size = sizeof(((control_sensor_data_t *)0)->last_sample_time);
    l.csd_last_value_offset = offsetof(control_sensor_data_t, last_value);
    l.csd_ds_offset = offsetof(control_sensor_data_t, ds);
    l.csd_ds_size = sizeof(data_store_info_t);
    return l;
}

static void set_sensor(imx_control_sensor_block_t *c, const char *name, uint32_t id, uint32_t rate) {
    memset(c, 0, sizeof *c);
    strncpy(c->name, name, sizeof c->name - 1);
    c->id = id;
    c->sample_rate = rate;
    c->enabled = 1;
}

/* A NOR flash part in RAM behind the spool_flash_t callbacks (what a firmware's driver
 * does): programming only clears bits; alignment and bounds are checked and counted. */
uint8_t g_fw_flash[FW_FLASH_SIZE];
fw_flash_counters_t g_fw_flash_counters;

static int fw_flash_read(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len) {
    const uint8_t *part = (const uint8_t *)ctx;
    if (offset > FW_FLASH_SIZE || len > FW_FLASH_SIZE - offset) {
        g_fw_flash_counters.violations++;
        return -1;
    }
    memcpy(buf, part + offset, len);
    return 0;
}

static int fw_flash_program(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len) {
    uint8_t *part = (uint8_t *)ctx;
    uint32_t i;
    g_fw_flash_counters.programs++;
    if (offset > FW_FLASH_SIZE || len > FW_FLASH_SIZE - offset || offset % SPOOL_FLASH_PROGRAM_ALIGN != 0 ||
        len % SPOOL_FLASH_PROGRAM_ALIGN != 0) {
        g_fw_flash_counters.violations++;
        return -1;
    }
    for (i = 0; i < len; i++) part[offset + i] &= buf[i];
    return 0;
}

static int fw_flash_erase(void *ctx, uint32_t offset, uint32_t len) {
    uint8_t *part = (uint8_t *)ctx;
    g_fw_flash_counters.erases++;
    if (len != FW_FLASH_ERASE || offset % FW_FLASH_ERASE != 0 || offset > FW_FLASH_SIZE - len) {
        g_fw_flash_counters.violations++;
        return -1;
    }
    memset(part + offset, 0xFF, len);
    return 0;
}

spool_flash_t fw_flash(void) {
    spool_flash_t f;
    f.read = fw_flash_read;
    f.program = fw_flash_program;
    f.erase = fw_flash_erase;
    f.ctx = g_fw_flash;
    f.size = FW_FLASH_SIZE;
    f.write_size = 4;
    f.erase_size = FW_FLASH_ERASE;
    return f;
}

void fw_flash_wipe(void) {
    memset(g_fw_flash, 0xFF, sizeof g_fw_flash);
    memset(&g_fw_flash_counters, 0, sizeof g_fw_flash_counters);
}

spool_status_t fw_boot(uint32_t flags) { return fw_boot_with(flags, NULL); }

spool_status_t fw_boot_with(uint32_t flags, const spool_flash_t *flash) {
    spool_config_t cfg;
    spool_gps_config_t gps;
    spool_layout_t l = fw_layout();
    spool_status_t s;
    uint16_t i;

    memset(host_csd, 0, sizeof host_csd);
    memset(can_csd, 0, sizeof can_csd);
    set_sensor(&host_csb[HOST_LAT], "Latitude", IMX_INTERNAL_SENSOR_GPS_LATITUDE, 0);
    set_sensor(&host_csb[HOST_LON], "Longitude", IMX_INTERNAL_SENSOR_GPS_LONGITUDE, 0);
    set_sensor(&host_csb[HOST_ALT], "Altitude", IMX_INTERNAL_SENSOR_GPS_ALTITUDE, 0);
    set_sensor(&host_csb[HOST_SPEED], "Speed", IMX_INTERNAL_SENSOR_VEHICLE_SPEED, 0);
    for (i = HOST_TSD_FIRST; i <= HOST_TSD_LAST; i++) {
        set_sensor(&host_csb[i], "Periodic", 100u + i, 1000u);
    }
    set_sensor(&host_csb[HOST_STOPPED], "Vehicle stopped", 200, 0);
    set_sensor(&host_csb[HOST_EVENT], "Door", 201, 0);
    for (i = 0; i < UNKNOWN_CAN_BUS_ENTRY; i++) {
        set_sensor(&can_csb[i], "CAN signal", 1000u + i, 100u);
    }
    set_sensor(&can_csb[UNKNOWN_CAN_BUS_ENTRY], "Unknown CAN id", 1999, 0);
    for (i = 0; i < NO_HOST; i++) {
        imx_init_data_store_entry(&host_csd[i].ds); /* before registration: a counted no-op */
    }

    spool_deinit();
    if ((s = spool_config_default(&cfg)) != SPOOL_OK) return s;
    cfg.flags = flags;
    cfg.utc_now = fw_utc_now;
    if (flash) cfg.flash = *flash;
    if ((s = spool_init(&cfg)) != SPOOL_OK) return s;
    if ((s = spool_register_sensors(host_csb, host_csd, NO_HOST, &l, SOURCE_GATEWAY)) != SPOOL_OK) return s;
    if ((s = spool_register_sensors(can_csb, can_csd, NO_CAN, &l, SOURCE_CAN)) != SPOOL_OK) return s;
    for (i = 0; i < NO_HOST; i++) {
        imx_init_data_store_entry(&host_csd[i].ds);
        if ((s = spool_last_status()) != SPOOL_OK) return s;
    }
    gps.latitude_id = IMX_INTERNAL_SENSOR_GPS_LATITUDE;
    gps.longitude_id = IMX_INTERNAL_SENSOR_GPS_LONGITUDE;
    gps.altitude_id = IMX_INTERNAL_SENSOR_GPS_ALTITUDE;
    gps.speed_id = SPOOL_ID_NONE;
    gps.get_position = fw_position;
    gps.ctx = &g_position;
    return spool_set_gps(&gps);
}
