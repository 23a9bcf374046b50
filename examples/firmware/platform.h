/* What the test runner needs from a board: console, exit, a periodic interrupt, the stack. */
#ifndef FW_PLATFORM_H
#define FW_PLATFORM_H

#include <stdint.h>

/* Console output of one byte (buffered per line where the transport wants it). */
void platform_putc(char c);
/* Flush buffered console output. */
void platform_flush(void);
/* Ends the QEMU run with this exit status (0 = pass). */
void platform_exit(int code) __attribute__((noreturn));
/* Name of the board/core, e.g. "cortex-m3 (lm3s6965evb)". */
extern const char platform_name[];

/* Periodic interrupt that calls `handler` from interrupt context every `period` cycles/ticks. */
void platform_tick_start(void (*handler)(void), uint32_t period);
void platform_tick_stop(void);
/* Interrupts that became pending while the library held its critical section (counted by
 * spool_cs_release: proof that the hooks really masked them). */
extern volatile uint32_t platform_irqs_held_off;
/* Wait for an interrupt (or spin briefly). */
void platform_idle(void);

/* Current stack pointer and the lowest address of the stack region (for stack painting). */
uintptr_t platform_sp(void);
extern uint32_t _sstack[];
extern uint32_t _estack[];

#endif
