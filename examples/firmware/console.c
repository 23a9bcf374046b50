/*
 * The little bit of libc the shared C test suite needs, on the board's console:
 * printf/fprintf/vprintf (d i u x X s c p %, flags '-' '0', width, l ll z), fflush, puts,
 * strncpy and strncmp (the rest of <string.h> comes from the Rust static library).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "platform.h"

static int out_count;

static void out(char c) {
    platform_putc(c);
    out_count++;
}

static void out_num(unsigned long long v, unsigned base, int upper, int neg, int width, int zero,
                    int left) {
    char buf[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0, len, pad;
    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    len = n + (neg ? 1 : 0);
    pad = width > len ? width - len : 0;
    if (!left && !zero) {
        while (pad-- > 0) out(' ');
    }
    if (neg) out('-');
    if (!left && zero) {
        while (pad-- > 0) out('0');
    }
    while (n > 0) out(buf[--n]);
    if (left) {
        while (pad-- > 0) out(' ');
    }
}

int vprintf(const char *fmt, va_list ap) {
    out_count = 0;
    for (; *fmt; fmt++) {
        int left = 0, zero = 0, width = 0, lng = 0;
        if (*fmt != '%') {
            out(*fmt);
            continue;
        }
        fmt++;
        for (;; fmt++) {
            if (*fmt == '-') left = 1;
            else if (*fmt == '0') zero = 1;
            else break;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            lng += (*fmt == 'z') ? (sizeof(size_t) > sizeof(int)) : 1;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = lng >= 2 ? va_arg(ap, long long) : lng == 1 ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            out_num(u, 10, 0, v < 0, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = lng >= 2   ? va_arg(ap, unsigned long long)
                                   : lng == 1 ? va_arg(ap, unsigned long)
                                              : va_arg(ap, unsigned);
            out_num(v, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0, width, zero, left);
            break;
        }
        case 'p':
            out('0');
            out('x');
            out_num((uintptr_t)va_arg(ap, void *), 16, 0, 0, 0, 0, 0);
            break;
        case 'c':
            out((char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = (int)strlen(s), pad = width > len ? width - len : 0;
            if (!left) {
                while (pad-- > 0) out(' ');
            }
            while (*s) out(*s++);
            if (left) {
                while (pad-- > 0) out(' ');
            }
            break;
        }
        case '%':
            out('%');
            break;
        default: /* unsupported conversion: show it rather than guess */
            out('%');
            if (*fmt) out(*fmt);
            else fmt--;
            break;
        }
    }
    return out_count;
}

int printf(const char *fmt, ...) {
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* One console: stdout and stderr are interleaved in order. */
int fprintf(FILE *f, const char *fmt, ...) {
    va_list ap;
    int n;
    (void)f;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int fflush(FILE *f) {
    (void)f;
    platform_flush();
    return 0;
}

int puts(const char *s) {
    int n = 0;
    while (*s) {
        out(*s++);
        n++;
    }
    out('\n');
    return n + 1;
}

char *strncpy(char *dst, const char *src, size_t n) {
    size_t i = 0;
    for (; i < n && src[i]; i++) dst[i] = src[i];
    for (; i < n; i++) dst[i] = '\0';
    return dst;
}

int strncmp(const char *a, const char *b, size_t n) {
    for (; n > 0; n--, a++, b++) {
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        if (*a == '\0') return 0;
    }
    return 0;
}
