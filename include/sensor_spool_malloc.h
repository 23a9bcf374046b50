/*
 * sensor_spool_malloc.h: optional pool-backed malloc wrapper (c/spool_malloc_wrap.c).
 *
 * Link the program with
 *     -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc
 * plus c/spool_malloc_wrap.c and libsensor_spool.a. Every malloc / free / calloc / realloc
 * of the program (and of the libraries linked statically into it) then goes through
 * __wrap_*:
 *
 *   before spool_pool_init()  everything goes to __real_* and nothing is counted.
 *   malloc / calloc           served by the three-tier C pool (smallest fitting block,
 *                             8-byte aligned; calloc zeroes it) when it can; when the
 *                             request is larger than the largest block or every fitting
 *                             tier is full, falls through to __real_malloc / __real_calloc
 *                             (counted in `fallback_allocs`). size 0: __real_*.
 *                             calloc(n, size) with n * size overflowing: NULL, errno ENOMEM.
 *   free                      pool blocks (spool_pool_owns) go back to the pool (a double
 *                             free is rejected by the pool, counted in `invalid_frees`, never
 *                             forwarded); other pointers to __real_free (`foreign_frees`).
 *   realloc                   NULL: malloc. size 0: free, returns NULL. Foreign pointer:
 *                             __real_realloc (`realloc_foreign`). Pool block: shrinking or
 *                             growth within the block returns the same pointer
 *                             (`realloc_in_place`); growth into a larger pool block copies
 *                             and frees the old one (`realloc_moved`); growth the pool cannot
 *                             serve returns NULL with errno = ENOMEM and leaves the original
 *                             block untouched and valid (`realloc_rejected`).
 *
 * Pool blocks are 8-byte aligned (enough for every type on Cortex-M and RV32; on x86-64
 * long double / SSE types that need 16 bytes must not be allocated through the pool).
 * Counters are updated with __atomic builtins (relaxed); define
 * SPOOL_MALLOC_WRAP_NO_ATOMICS when compiling the wrapper for a core without atomics.
 */
#ifndef SENSOR_SPOOL_MALLOC_H
#define SENSOR_SPOOL_MALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Counters of the malloc wrapper (only calls after spool_pool_init() are counted). */
typedef struct spool_malloc_stats_t {
    uint32_t pool_allocs;      /**< malloc / calloc served by the pool */
    uint32_t fallback_allocs;  /**< malloc / calloc the pool could not serve: __real_* */
    uint32_t pool_frees;       /**< pool blocks freed (by free or by realloc to size 0) */
    uint32_t foreign_frees;    /**< non-pool pointers forwarded to __real_free */
    uint32_t invalid_frees;    /**< pool frees the pool rejected (double free); not forwarded */
    uint32_t realloc_in_place; /**< realloc of a pool block that fits its block */
    uint32_t realloc_moved;    /**< realloc of a pool block into a larger pool block */
    uint32_t realloc_rejected; /**< realloc growth the pool could not serve: NULL, ENOMEM */
    uint32_t realloc_foreign;  /**< realloc of a non-pool pointer: __real_realloc */
} spool_malloc_stats_t;

/** Copies the wrapper's counters into *out (no-op for NULL). */
void spool_malloc_stats(spool_malloc_stats_t *out);

/** Sets every counter of the wrapper to 0. */
void spool_malloc_stats_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* SENSOR_SPOOL_MALLOC_H */
