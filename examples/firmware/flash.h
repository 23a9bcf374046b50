/* A RAM-backed NOR flash region inside the firmware (the library's NorFlashStorage runs on
 * it through spool_flash_t callbacks) and the on-target spill / shutdown-flush / recovery
 * tests. */
#ifndef FW_FLASH_H
#define FW_FLASH_H

#include <stdint.h>

#include "sensor_spool.h"

/* 16 KiB: four 4 KiB erase sectors (SPOOL_FLASH_SECTOR_SIZE). */
#define FW_FLASH_SIZE (4u * SPOOL_FLASH_SECTOR_SIZE)

/* Erases the whole region to 0xFF (a factory-fresh part). */
void fw_flash_format(void);
/* spool_init with the flash region (threshold_pct 0 = default 80 %), then the same sensor
 * registrations as fw_boot (host + CAN arrays); the region's contents are kept, so a call
 * after spool_deinit is a power cycle: the library recovers what the region holds. */
spool_status_t fw_boot_flash(uint32_t threshold_pct);

void test_flash_spill_at_threshold(void);
void test_flash_shutdown_flush(void);
void test_flash_power_cycle_recovery(void);

#endif
