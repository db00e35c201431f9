/* A bump allocator for the plugin's short-lived strings and tables: everything one run of the
 * plugin builds is released at once with arena_free(). */
#ifndef CRPC_GEN_ARENA_H
#define CRPC_GEN_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
  arena_block *head;
} arena;

/* Returns zeroed memory for n bytes (n > 0), suitably aligned for any object, or NULL when out
 * of memory. Owned by the arena. */
void *arena_alloc(arena *a, size_t n);

/* Copies s into the arena. NULL when out of memory. */
char *arena_strdup(arena *a, const char *s);

/* Copies the first n bytes of s into the arena and terminates the copy. NULL when out of memory. */
char *arena_strndup(arena *a, const char *s, size_t n);

/* Releases everything the arena holds; the arena may be used again afterwards. */
void arena_free(arena *a);

#endif
