/*
 * Cortex-M board support (lm3s6965evb / mps2-an386 under QEMU): vector table, reset,
 * semihosting console and exit, SysTick, and the library's critical-section hooks
 * (PRIMASK save / cpsid i / restore), i.e. the `extern-cs` static library.
 */
#include <stdint.h>


#include "common.h"
#include "platform.h"
#include "sensor_spool.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
int main(void);

#if defined(__ARM_FP)
const char platform_name[] = "cortex-m4f (mps2-an386)";
#else
const char platform_name[] = "cortex-m3 (lm3s6965evb)";
#endif

/* ---- critical section: the firmware's own hooks ---------------------------------- */

uint32_t spool_cs_acquire(void) {
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)

volatile uint32_t platform_irqs_held_off;

void spool_cs_release(uint32_t state) {
    if ((state & 1u) == 0) {
        /* SysTick became pending while the library held the critical section */
        if (SCB_ICSR & (1u << 26)) platform_irqs_held_off++;
        __asm__ volatile("cpsie i" ::: "memory");
    }
}

/* ---- semihosting ------------------------------------------------------------------- */

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char line[160];
static unsigned line_len;

void platform_flush(void) {
    if (line_len == 0) return;
    line[line_len] = '\0';
    semihost(0x04 /* SYS_WRITE0 */, line);
    line_len = 0;
}

void platform_putc(char c) {
    line[line_len++] = c;
    if (c == '\n' || line_len == sizeof line - 1) platform_flush();
}

void platform_exit(int code) {
    uint32_t block[2];
    platform_flush();
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = (uint32_t)code;
    semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
    for (;;) {
    }
}

/* ---- SysTick ------------------------------------------------------------------------- */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

static void (*volatile tick_handler)(void);

void platform_tick_start(void (*handler)(void), uint32_t period) {
    tick_handler = handler;
    SYST_RVR = period - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
}

void platform_tick_stop(void) {
    SYST_CSR = 0;
    tick_handler = 0;
}

void platform_idle(void) { __asm__ volatile("nop"); }

uintptr_t platform_sp(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static void SysTick_Handler(void) {
    void (*h)(void) = tick_handler;
    if (h) h();
}

/* ---- reset and vectors --------------------------------------------------------------- */

static void Fault_Handler(void) {
    const char *m = "FAULT: hard fault / unexpected exception\n";
    while (*m) platform_putc(*m++);
    platform_exit(3);
}

void Reset_Handler(void) __attribute__((noreturn));
void Reset_Handler(void) {
    uint32_t *src = _sidata, *dst;
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11 full access: the FPU is on before any C code uses it */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (dst = _sdata; dst < _edata;) *dst++ = *src++;
    for (dst = _sbss; dst < _ebss;) *dst++ = 0;
    platform_exit(main());
}

typedef union {
    void (*fn)(void);
    uint32_t *sp;
} vector_t;

__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16] = {
    {.sp = _estack},  {.fn = Reset_Handler}, {.fn = Fault_Handler}, {.fn = Fault_Handler},
    {.fn = Fault_Handler}, {.fn = Fault_Handler}, {.fn = Fault_Handler}, {.fn = 0},
    {.fn = 0},        {.fn = 0},             {.fn = 0},             {.fn = Fault_Handler},
    {.fn = Fault_Handler}, {.fn = 0},        {.fn = Fault_Handler}, {.fn = SysTick_Handler},
};
