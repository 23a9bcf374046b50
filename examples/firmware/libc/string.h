/*
 * Freestanding stand-in for <string.h>. memcpy/memset/memmove/memcmp/strlen come from the
 * Rust static library (compiler_builtins); strncpy and strncmp from console.c.
 */
#ifndef FW_STRING_H
#define FW_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
char *strncpy(char *dst, const char *src, size_t n);
int strncmp(const char *a, const char *b, size_t n);

#endif
