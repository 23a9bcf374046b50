/*
 * imatrix_compat.h: the iMatrix common.h types the MM2 API is written in, for code that
 * has no iMatrix common.h of its own. Hand-written; CI compiles it with the generated
 * sensor_spool.h as C99, C11 and C++17 (scripts/check-header.sh, tests/c/).
 *
 * Two ways to compile MM2 call sites unchanged against sensor-spool:
 *   - firmware with its own common.h (the usual case): include common.h, then
 *       #define SPOOL_HAVE_IMATRIX_COMMON 1
 *       #include "sensor_spool.h"
 *     and, once at start-up, pass your enum's numbers to the library:
 *       spool_imx_codes_t c = SPOOL_IMX_CODES_FROM_ENUM; spool_imx_set_codes(&c);
 *   - no common.h: #include "imatrix_compat.h" (it includes sensor_spool.h).
 * Without either, sensor_spool.h leaves the MM2 functions out (the MM1 and spool_* API
 * need none of these types).
 *
 * Sources: the iMatrix API facts (imatrix-api-facts.md, sections 1 and 2). The 2025
 * imx_result_t enum has never been published; see the numbering notes below.
 */
#ifndef IMATRIX_COMPAT_H
#define IMATRIX_COMPAT_H

#include <stdbool.h>
#include <stdint.h>

#if defined(SENSOR_SPOOL_H) && defined(SPOOL_NO_MM2_API)
#error "imatrix_compat.h: include it before sensor_spool.h (or instead of it), else the MM2 functions stay undeclared"
#endif
#ifdef SPOOL_HAVE_IMATRIX_COMMON
#error "imatrix_compat.h: SPOOL_HAVE_IMATRIX_COMMON says the firmware's common.h defines these types; include sensor_spool.h instead"
#endif

/* Time (common.h). */
typedef uint32_t imx_time_t;        /* ms since boot */
typedef uint32_t imx_utc_time_t;    /* UTC seconds since 1970 */
typedef uint64_t imx_utc_time_ms_t; /* UTC ms since 1970 */

/* The 32-bit sample union (common.h `union data_32`). Its pointer member makes it
 * 8 bytes on 64-bit Linux; MM2 passes it by value and the library stores uint_32bit. */
typedef struct var_data_entry var_data_entry_t;
typedef union data_32 {
    uint32_t uint_32bit;
    int32_t int_32bit;
    float float_32bit;
    var_data_entry_t *var_data;
} imx_data_32_t;

/*
 * imx_result_t (common.h `enum imx_result`). Numbering, by evidence:
 *   IMX_SUCCESS 0            every source.
 *   IMX_NO_DATA 34           known ONLY from device logs ("result: 34:NO DATA"); no 2025
 *                            enum definition is available. (2018 common.h had 22.)
 *   IMX_ERROR 39             probable: a 2025 local define and CoAP failure logs.
 *   IMX_FILE_ERROR 54        2025 documentation (IMX_LAST_ERROR 55).
 *   IMX_INVALID_ENTRY 1, IMX_GENERAL_FAILURE 7, IMX_INIT_ERROR 8, IMX_OUT_OF_MEMORY 14:
 *                            the 2018 common.h numbers; the 2025 ones are not known.
 *   IMX_INVALID_PARAMETER 56, IMX_TIMEOUT 57: no known number; placed past
 *                            IMX_LAST_ERROR so they collide with no iMatrix code.
 * A firmware with its real common.h uses its own numbers instead: see spool_imx_set_codes.
 */
typedef enum imx_result {
    IMX_SUCCESS = 0,
    IMX_INVALID_ENTRY = 1,
    IMX_GENERAL_FAILURE = 7,
    IMX_INIT_ERROR = 8,
    IMX_OUT_OF_MEMORY = 14,
    IMX_NO_DATA = 34,
    IMX_ERROR = 39,
    IMX_FILE_ERROR = 54,
    IMX_LAST_ERROR = 55,
    IMX_INVALID_PARAMETER = 56,
    IMX_TIMEOUT = 57
} imx_result_t;

/* imatrix_upload_source_t (common.h `enum imatrix_upload_source`, 2026-01 order). The
 * APPLIANCE and CAN values exist only with APPLIANCE_GATEWAY / CAN_PLATFORM, as in
 * common.h. IMX_HOSTED_DEVICE is the name most 2025 code uses for value 1. */
typedef enum imatrix_upload_source {
    IMX_UPLOAD_GATEWAY = 0,
    IMX_UPLOAD_HOSTED_DEVICE = 1,
    IMX_HOSTED_DEVICE = 1,
    IMX_UPLOAD_BLE_DEVICE = 2,
#ifdef APPLIANCE_GATEWAY
    IMX_UPLOAD_APPLIANCE_DEVICE,
#endif
#ifdef CAN_PLATFORM
    IMX_UPLOAD_CAN_DEVICE,
#endif
    IMX_UPLOAD_NO_SOURCES
} imatrix_upload_source_t;

/* The firmware's sensor structs, by tag (common.h defines them; only pointers are used). */
typedef struct control_sensor_block imx_control_sensor_block_t;
typedef struct control_sensor_data control_sensor_data_t;
typedef struct _data_store_info data_store_info_t;

#define SPOOL_IMATRIX_COMPAT 1
#include "sensor_spool.h"

#endif /* IMATRIX_COMPAT_H */
