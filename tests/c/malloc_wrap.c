/*
 * The pool-backed malloc wrapper (c/spool_malloc_wrap.c), linked with
 *   -Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc
 * Checks routing (pool vs __real_*), fallback, realloc rules and the counters exactly,
 * together with the C pool's own statistics. Prints one line per test and
 * `N passed, N failed` last. Build with -fno-builtin so that the compiler keeps every
 * allocation call.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sensor_spool.h"
#include "sensor_spool_malloc.h"

static int g_failures;
/* Not a constant, so that the compiler does not reject the overflowing calloc. */
static volatile size_t g_huge = SIZE_MAX / 2 + 1;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            g_failures++;                                                             \
            fprintf(stderr, "  check failed %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

/* Expected wrapper counters, in spool_malloc_stats_t field order. */
static void check_stats(unsigned line, uint32_t pool_allocs, uint32_t fallback_allocs,
                        uint32_t pool_frees, uint32_t foreign_frees, uint32_t invalid_frees,
                        uint32_t in_place, uint32_t moved, uint32_t rejected, uint32_t foreign) {
    spool_malloc_stats_t s;
    spool_malloc_stats(&s);
    if (s.pool_allocs != pool_allocs || s.fallback_allocs != fallback_allocs ||
        s.pool_frees != pool_frees || s.foreign_frees != foreign_frees ||
        s.invalid_frees != invalid_frees || s.realloc_in_place != in_place ||
        s.realloc_moved != moved || s.realloc_rejected != rejected ||
        s.realloc_foreign != foreign) {
        g_failures++;
        fprintf(stderr,
                "  stats at line %u: got %u %u %u %u %u %u %u %u %u, want %u %u %u %u %u %u %u %u %u\n",
                line, (unsigned)s.pool_allocs, (unsigned)s.fallback_allocs, (unsigned)s.pool_frees,
                (unsigned)s.foreign_frees, (unsigned)s.invalid_frees,
                (unsigned)s.realloc_in_place, (unsigned)s.realloc_moved,
                (unsigned)s.realloc_rejected, (unsigned)s.realloc_foreign, (unsigned)pool_allocs,
                (unsigned)fallback_allocs, (unsigned)pool_frees, (unsigned)foreign_frees,
                (unsigned)invalid_frees, (unsigned)in_place, (unsigned)moved, (unsigned)rejected,
                (unsigned)foreign);
    }
}
#define STATS(...) check_stats(__LINE__, __VA_ARGS__)

/* Blocks of the C pool in use, per tier. */
static void in_use(uint32_t out[SPOOL_POOL_TIERS]) {
    spool_tier_stats_t t[SPOOL_POOL_TIERS];
    unsigned i;
    CHECK(spool_pool_stats(t, SPOOL_POOL_TIERS) == SPOOL_OK);
    for (i = 0; i < SPOOL_POOL_TIERS; i++) {
        out[i] = t[i].in_use;
    }
}

static int pool_idle(void) {
    uint32_t u[SPOOL_POOL_TIERS];
    in_use(u);
    return u[0] == 0 && u[1] == 0 && u[2] == 0;
}

static void test_before_init(void) {
    char *p = malloc(100);
    CHECK(p != NULL);
    CHECK(!spool_pool_initialized());
    CHECK(!spool_pool_owns(p));
    p = realloc(p, 200);
    CHECK(p != NULL && !spool_pool_owns(p));
    free(p);
    STATS(0, 0, 0, 0, 0, 0, 0, 0, 0);
    CHECK(pool_idle());
}

static void test_routing_and_fallback(void) {
    char *a, *b, *c, *big[9], *small[33];
    unsigned i;
    spool_malloc_stats_reset();
    a = malloc(100);
    b = malloc(300);
    c = malloc(5000); /* larger than the largest block: __real_malloc */
    CHECK(a && b && c);
    CHECK(spool_pool_owns(a) && spool_pool_block_size(a) == 256);
    CHECK(spool_pool_owns(b) && spool_pool_block_size(b) == 1024);
    CHECK(!spool_pool_owns(c) && spool_pool_block_size(c) == 0);
    memset(a, 1, 100);
    memset(b, 2, 300);
    memset(c, 3, 5000);
    STATS(2, 1, 0, 0, 0, 0, 0, 0, 0);
    free(a);
    free(b);
    free(c);
    free(NULL);
    STATS(2, 1, 2, 1, 0, 0, 0, 0, 0);
    CHECK(pool_idle());
    /* Tier 2 (8 x 4096 on hosts) full: the 9th 4000-byte request falls through. */
    for (i = 0; i < 9; i++) {
        big[i] = malloc(4000);
        CHECK(big[i] != NULL);
    }
    for (i = 0; i < 8; i++) {
        CHECK(spool_pool_block_size(big[i]) == 4096);
    }
    CHECK(!spool_pool_owns(big[8]));
    /* Tier 0 (32 x 256) full: the 33rd small request is served by tier 1 (pool fallback). */
    for (i = 0; i < 33; i++) {
        small[i] = malloc(100);
        CHECK(small[i] != NULL && spool_pool_owns(small[i]));
    }
    CHECK(spool_pool_block_size(small[32]) == 1024);
    STATS(2 + 8 + 33, 2, 2, 1, 0, 0, 0, 0, 0);
    for (i = 0; i < 9; i++) {
        free(big[i]);
    }
    for (i = 0; i < 33; i++) {
        free(small[i]);
    }
    STATS(43, 2, 2 + 8 + 33, 2, 0, 0, 0, 0, 0);
    CHECK(pool_idle());
}

static void test_calloc(void) {
    unsigned char *p, *q, *z;
    unsigned i, zero = 1;
    spool_malloc_stats_reset();
    p = malloc(200);
    CHECK(p != NULL);
    memset(p, 0xAB, 200);
    free(p);
    q = calloc(10, 20);
    CHECK(q != NULL && spool_pool_owns(q));
    for (i = 0; i < 200; i++) {
        zero &= q[i] == 0;
    }
    CHECK(zero);
    errno = 0;
    CHECK(calloc(g_huge, 4) == NULL); /* n * size overflows */
    CHECK(errno == ENOMEM);
    z = calloc(0, 5); /* size 0: __real_calloc, not counted */
    STATS(2, 0, 1, 0, 0, 0, 0, 0, 0);
    free(q);
    free(z);
    STATS(2, 0, 2, z != NULL, 0, 0, 0, 0, 0);
    CHECK(pool_idle());
}

static void test_realloc(void) {
    char *p, *q, *r, *s, *f, *g, *n, *x, *fill[8];
    uint32_t u[SPOOL_POOL_TIERS];
    unsigned i;
    spool_malloc_stats_reset();
    p = malloc(100);
    CHECK(p != NULL);
    strcpy(p, "hello");
    q = realloc(p, 200); /* fits the 256-byte block */
    CHECK(q == p);
    r = realloc(q, 1000); /* moves to a 1024-byte block */
    CHECK(r != NULL && r != q && spool_pool_block_size(r) == 1024);
    CHECK(strcmp(r, "hello") == 0);
    in_use(u);
    CHECK(u[0] == 0 && u[1] == 1 && u[2] == 0);
    STATS(1, 0, 0, 0, 0, 1, 1, 0, 0);
    /* Growth past the largest block: rejected, original intact. */
    errno = 0;
    s = realloc(r, 100000);
    CHECK(s == NULL && errno == ENOMEM);
    CHECK(strcmp(r, "hello") == 0 && spool_pool_block_size(r) == 1024);
    /* Growth into a full tier: rejected too. */
    for (i = 0; i < 8; i++) {
        fill[i] = malloc(4000);
        CHECK(fill[i] != NULL && spool_pool_owns(fill[i]));
    }
    errno = 0;
    s = realloc(r, 2000);
    CHECK(s == NULL && errno == ENOMEM);
    CHECK(strcmp(r, "hello") == 0);
    in_use(u);
    CHECK(u[0] == 0 && u[1] == 1 && u[2] == 8);
    STATS(9, 0, 0, 0, 0, 1, 1, 2, 0);
    for (i = 0; i < 8; i++) {
        free(fill[i]);
    }
    /* Foreign pointers go to __real_realloc. */
    f = malloc(5000);
    CHECK(f != NULL && !spool_pool_owns(f));
    strcpy(f, "foreign");
    g = realloc(f, 6000);
    CHECK(g != NULL && !spool_pool_owns(g) && strcmp(g, "foreign") == 0);
    free(g);
    /* realloc(NULL, n) allocates; realloc(p, 0) frees. */
    n = realloc(NULL, 50);
    CHECK(n != NULL && spool_pool_owns(n));
    CHECK(realloc(n, 0) == NULL);
    free(r);
    /* A double free is rejected by the pool and never reaches __real_free. */
    x = malloc(10);
    free(x);
    free(x);
    STATS(9 + 1 + 1, 1, 8 + 1 + 1 + 1, 1, 1, 1, 1, 2, 1);
    CHECK(pool_idle());
}

int main(void) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"before spool_pool_init: all __real_*", test_before_init},
        {"routing and fallback", test_routing_and_fallback},
        {"calloc", test_calloc},
        {"realloc", test_realloc},
    };
    unsigned i, passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IONBF, 0); /* no stdio buffer allocated during the checks */
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = g_failures;
        if (i == 1) {
            CHECK(spool_pool_init() == SPOOL_OK);
            CHECK(spool_pool_init() == SPOOL_OK);
            CHECK(spool_pool_initialized());
        }
        tests[i].fn();
        if (g_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
