/* A set of C identifiers, to keep generated names unique: protobuf-c's names are entered first,
 * then crpc's names claim theirs in a fixed order. */
#ifndef CRPC_GEN_NAMESET_H
#define CRPC_GEN_NAMESET_H

#include <stddef.h>

#include "arena.h"

typedef struct nameset {
  arena *arena;       /* holds the slots and the copied names */
  const char **slots; /* open addressing; NULL is empty */
  size_t cap;         /* a power of two */
  size_t count;
} nameset;

/* Returns 0 or -1 (out of memory). */
int nameset_init(nameset *s, arena *a);

/* Adds name (copied). Returns 1 when added, 0 when it was there already, -1 when out of memory. */
int nameset_add(nameset *s, const char *name);

int nameset_has(const nameset *s, const char *name);

/* Claims `base`, or when taken base + "_", base + "__", ... : the first one not in the set,
 * which is added and returned (arena-owned). NULL when out of memory. */
const char *nameset_claim(nameset *s, const char *base);

#endif
