/*
 * RISC-V board support (QEMU virt, M-mode, -bios none): 16550 UART console, sifive_test
 * exit device, CLINT machine timer interrupt, and the library's critical-section hooks
 * (mstatus.MIE save / clear / restore), i.e. the `extern-cs` static library.
 */
#include <stdint.h>


#include "common.h"
#include "platform.h"
#include "sensor_spool.h"

const char platform_name[] = "riscv32imc (virt)";

#define UART_THR (*(volatile uint8_t *)0x10000000u)
#define UART_LSR (*(volatile uint8_t *)0x10000005u)
#define SIFIVE_TEST (*(volatile uint32_t *)0x00100000u)
#define CLINT_MTIMECMP_LO (*(volatile uint32_t *)0x02004000u)
#define CLINT_MTIMECMP_HI (*(volatile uint32_t *)0x02004004u)
#define CLINT_MTIME_LO (*(volatile uint32_t *)0x0200BFF8u)
#define CLINT_MTIME_HI (*(volatile uint32_t *)0x0200BFFCu)
#define MSTATUS_MIE 0x8u
#define MIE_MTIE 0x80u

/* ---- critical section: the firmware's own hooks ---------------------------------- */

uint32_t spool_cs_acquire(void) {
    uint32_t prev;
    __asm__ volatile("csrrci %0, mstatus, 8" : "=r"(prev)::"memory");
    return prev & MSTATUS_MIE;
}

volatile uint32_t platform_irqs_held_off;

void spool_cs_release(uint32_t state) {
    if (state & MSTATUS_MIE) {
        uint32_t mip;
        __asm__ volatile("csrr %0, mip" : "=r"(mip));
        /* the machine timer became pending while the library held the critical section */
        if (mip & MIE_MTIE) platform_irqs_held_off++;
        __asm__ volatile("csrsi mstatus, 8" ::: "memory");
    }
}

/* ---- console and exit ----------------------------------------------------------------- */

void platform_putc(char c) {
    while ((UART_LSR & 0x20u) == 0) {
    }
    UART_THR = (uint8_t)c;
}

void platform_flush(void) {}

void platform_exit(int code) {
    /* sifive_test: 0x5555 = pass (QEMU exit 0), (code << 16) | 0x3333 = fail with `code`. */
    SIFIVE_TEST = code == 0 ? 0x5555u : (((uint32_t)code << 16) | 0x3333u);
    for (;;) {
    }
}

/* ---- machine timer ---------------------------------------------------------------------- */

static void (*volatile tick_handler)(void);
static uint32_t tick_period;

static uint64_t mtime(void) {
    uint32_t hi, lo;
    do {
        hi = CLINT_MTIME_HI;
        lo = CLINT_MTIME_LO;
    } while (hi != CLINT_MTIME_HI);
    return ((uint64_t)hi << 32) | lo;
}

static void set_mtimecmp(uint64_t t) {
    CLINT_MTIMECMP_LO = 0xFFFFFFFFu; /* no spurious interrupt between the two halves */
    CLINT_MTIMECMP_HI = (uint32_t)(t >> 32);
    CLINT_MTIMECMP_LO = (uint32_t)t;
}

void fw_trap_handler(void) __attribute__((interrupt("machine"), aligned(4)));
void fw_trap_handler(void) {
    uint32_t cause;
    __asm__ volatile("csrr %0, mcause" : "=r"(cause));
    if (cause == 0x80000007u) { /* machine timer interrupt */
        void (*h)(void) = tick_handler;
        set_mtimecmp(mtime() + tick_period);
        if (h) h();
        return;
    }
    {
        const char *m = "FAULT: unexpected trap\n";
        while (*m) platform_putc(*m++);
    }
    platform_exit(3);
}

/* `period` in CLINT ticks (10 MHz on virt). */
void platform_tick_start(void (*handler)(void), uint32_t period) {
    tick_handler = handler;
    tick_period = period;
    set_mtimecmp(mtime() + period);
    __asm__ volatile("csrs mie, %0" ::"r"(MIE_MTIE));
    __asm__ volatile("csrsi mstatus, 8" ::: "memory");
}

void platform_tick_stop(void) {
    __asm__ volatile("csrc mie, %0" ::"r"(MIE_MTIE));
    tick_handler = 0;
}

void platform_idle(void) { __asm__ volatile("nop"); }

uintptr_t platform_sp(void) {
    uintptr_t sp;
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    return sp;
}
