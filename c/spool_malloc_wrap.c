/*
 * Pool-backed malloc wrapper for GNU ld / lld `--wrap` (see include/sensor_spool_malloc.h).
 * Link with: -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sensor_spool.h"
#include "sensor_spool_malloc.h"

void *__real_malloc(size_t size);
void __real_free(void *ptr);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *ptr, size_t size);

void *__wrap_malloc(size_t size);
void __wrap_free(void *ptr);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static spool_malloc_stats_t g_stats;

#ifdef SPOOL_MALLOC_WRAP_NO_ATOMICS
#define COUNT(field) (g_stats.field++)
#define LOAD(field) (g_stats.field)
#define STORE0(field) (g_stats.field = 0)
#else
#define COUNT(field) ((void)__atomic_fetch_add(&g_stats.field, 1u, __ATOMIC_RELAXED))
#define LOAD(field) __atomic_load_n(&g_stats.field, __ATOMIC_RELAXED)
#define STORE0(field) __atomic_store_n(&g_stats.field, 0u, __ATOMIC_RELAXED)
#endif

/* A block from the pool, or NULL when the pool cannot serve `size`. */
static void *pool_get(size_t size) {
    void *p = NULL;
    if (size == 0 || spool_pool_alloc(size, &p) != SPOOL_OK) {
        return NULL;
    }
    return p;
}

void *__wrap_malloc(size_t size) {
    void *p;
    if (!spool_pool_initialized() || size == 0) {
        return __real_malloc(size);
    }
    p = pool_get(size);
    if (p != NULL) {
        COUNT(pool_allocs);
        return p;
    }
    COUNT(fallback_allocs);
    return __real_malloc(size);
}

void __wrap_free(void *ptr) {
    if (ptr == NULL) {
        return;
    }
    if (!spool_pool_initialized()) {
        __real_free(ptr);
        return;
    }
    if (spool_pool_owns(ptr)) {
        if (spool_pool_free(ptr) == SPOOL_OK) {
            COUNT(pool_frees);
        } else {
            COUNT(invalid_frees);
        }
        return;
    }
    COUNT(foreign_frees);
    __real_free(ptr);
}

void *__wrap_calloc(size_t n, size_t size) {
    void *p;
    if (!spool_pool_initialized()) {
        return __real_calloc(n, size);
    }
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    if (n * size == 0) {
        return __real_calloc(n, size);
    }
    p = pool_get(n * size);
    if (p != NULL) {
        COUNT(pool_allocs);
        memset(p, 0, n * size);
        return p;
    }
    COUNT(fallback_allocs);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *ptr, size_t size) {
    size_t block;
    void *p;
    if (!spool_pool_initialized()) {
        return __real_realloc(ptr, size);
    }
    if (ptr == NULL) {
        return __wrap_malloc(size);
    }
    if (size == 0) {
        __wrap_free(ptr);
        return NULL;
    }
    block = spool_pool_block_size(ptr);
    if (block == 0) {
        COUNT(realloc_foreign);
        return __real_realloc(ptr, size);
    }
    if (size <= block) {
        COUNT(realloc_in_place);
        return ptr;
    }
    p = pool_get(size);
    if (p == NULL) {
        COUNT(realloc_rejected);
        errno = ENOMEM;
        return NULL;
    }
    memcpy(p, ptr, block);
    (void)spool_pool_free(ptr);
    COUNT(realloc_moved);
    return p;
}

void spool_malloc_stats(spool_malloc_stats_t *out) {
    if (out == NULL) {
        return;
    }
    out->pool_allocs = LOAD(pool_allocs);
    out->fallback_allocs = LOAD(fallback_allocs);
    out->pool_frees = LOAD(pool_frees);
    out->foreign_frees = LOAD(foreign_frees);
    out->invalid_frees = LOAD(invalid_frees);
    out->realloc_in_place = LOAD(realloc_in_place);
    out->realloc_moved = LOAD(realloc_moved);
    out->realloc_rejected = LOAD(realloc_rejected);
    out->realloc_foreign = LOAD(realloc_foreign);
}

void spool_malloc_stats_reset(void) {
    STORE0(pool_allocs);
    STORE0(fallback_allocs);
    STORE0(pool_frees);
    STORE0(foreign_frees);
    STORE0(invalid_frees);
    STORE0(realloc_in_place);
    STORE0(realloc_moved);
    STORE0(realloc_rejected);
    STORE0(realloc_foreign);
}
