/*
 * Minimal firmware of the size report per feature set (scripts/size-sets.sh): it references
 * exactly the library entry points listed in the generated `keep.h` (one `KEEP(name)` per
 * entry point) and nothing else, so that what `--gc-sections` keeps of libsensor_spool.a is
 * what a firmware using that set of functions pays. It is linked, never run.
 *
 * The entry points are only referenced (their addresses stored in a table the reset
 * handler reads), never called: the prototypes below are deliberately generic.
 */
#include <stdint.h>

#define KEEP(name) extern void name(void);
#include "keep.h"
#undef KEEP

typedef void (*entry_t)(void);

static entry_t const entries[] = {
#define KEEP(name) name,
#include "keep.h"
#undef KEEP
};

volatile entry_t sink;

/* The extern-cs archive's critical-section hooks (the firmware's side, not the library's). */
uint32_t spool_cs_acquire(void) { return 0; }
void spool_cs_release(uint32_t state) { (void)state; }

void Reset_Handler(void);
void Reset_Handler(void) {
    for (unsigned i = 0; i < sizeof entries / sizeof entries[0]; i++) sink = entries[i];
    for (;;) {
    }
}

#if defined(__riscv)
__attribute__((section(".text.start"))) void _start(void);
void _start(void) { Reset_Handler(); }
#else
extern uint32_t _estack[];
typedef union {
    void (*fn)(void);
    uint32_t *sp;
} vector_t;
__attribute__((section(".isr_vector"), used)) static const vector_t vectors[2] = {{.sp = _estack}, {Reset_Handler}};
#endif
