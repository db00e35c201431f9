/* Call table of a connection: call id (non-zero u32) -> pointer. Open addressing with linear
 * probing and backward-shift deletion (no tombstones), so a long-lived connection with millions
 * of calls never degrades. Grows at 3/4 load; a table over 1024 slots is released when it
 * empties, a smaller one is kept for the next calls. */
#ifndef CRPC_IDMAP_H
#define CRPC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct crpc__idmap_slot {
  uint32_t key; /* 0: empty */
  void *value;
} crpc__idmap_slot;

typedef struct crpc__idmap {
  crpc__idmap_slot *slots;
  size_t cap; /* 0 or a power of two */
  size_t count;
} crpc__idmap;

void crpc__idmap_init(crpc__idmap *m);
void crpc__idmap_free(crpc__idmap *m);
/* 0, or -1 when out of memory. The key must be non-zero and not present. */
int crpc__idmap_put(crpc__idmap *m, uint32_t key, void *value);
void *crpc__idmap_get(const crpc__idmap *m, uint32_t key);
/* Removes key and returns its value, or NULL when absent. */
void *crpc__idmap_del(crpc__idmap *m, uint32_t key);
/* Removes and returns any one entry (*key set), or NULL when empty: for draining a table while
 * the callbacks run for each entry may add or remove others. */
void *crpc__idmap_pop(crpc__idmap *m, uint32_t *key);

#endif
