/*
 * Freestanding stand-in for <stdio.h>: just what the shared C test suite (tests/c/) uses.
 * The firmware has no libc; console.c implements these on the board's console
 * (semihosting on Cortex-M, the 16550 UART on RISC-V).
 */
#ifndef FW_STDIO_H
#define FW_STDIO_H

#include <stdarg.h>

typedef struct fw_file FILE;
#define stdout ((FILE *)1)
#define stderr ((FILE *)2)

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fprintf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
int fflush(FILE *f);
int puts(const char *s);

#endif
