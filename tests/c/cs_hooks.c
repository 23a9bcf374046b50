/*
 * Critical-section hooks for the no_std static library built with feature `extern-cs`:
 * the firmware provides them (here: a recursive pthread mutex standing in for an RTOS
 * mutex or an interrupt save/restore). Nesting is allowed; the state is unused.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#define SPOOL_EXTERN_CS 1
#include "common.h"
#include "sensor_spool.h"

static pthread_mutex_t cs_mutex;
static pthread_once_t cs_once = PTHREAD_ONCE_INIT;

static void cs_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&cs_mutex, &a);
    pthread_mutexattr_destroy(&a);
}

uint32_t spool_cs_acquire(void) {
    pthread_once(&cs_once, cs_init);
    pthread_mutex_lock(&cs_mutex);
    return 0;
}

void spool_cs_release(uint32_t state) {
    (void)state;
    pthread_mutex_unlock(&cs_mutex);
}
