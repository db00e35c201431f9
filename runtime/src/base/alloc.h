/* Every allocation of the runtime goes through these, so that one place can account for memory or
 * inject failures in tests. */
#ifndef CRPC_ALLOC_H
#define CRPC_ALLOC_H

#include <stdlib.h>

static inline void *crpc__malloc(size_t n) { return malloc(n); }
static inline void *crpc__calloc(size_t n, size_t size) { return calloc(n, size); }
static inline void *crpc__realloc(void *p, size_t n) { return realloc(p, n); }
static inline void crpc__free(void *p) { free(p); }

/* NUL-terminated copy of the n bytes at s (which need not be NUL-terminated), or NULL. */
char *crpc__strndup(const char *s, size_t n);
/* printf into a new string, or NULL on failure. */
char *crpc__asprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
