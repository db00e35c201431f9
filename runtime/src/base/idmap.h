/* Call table of a connection: call id (non-zero u32) -> pointer. Open addressing with linear
 * probing and backward-shift deletion (no tombstones), so a long-lived connection with millions
 * of calls never degrades. Grows at 3/4 load; a table over 1024 slots is released when it
 * empties, a smaller one is kept for the next calls.
 *
 * The peer chooses its call ids, so slots come from a keyed hash under a secret key drawn for
 * each table (crpc__idmap_init; idmap.c says which hash): whatever ids a peer picks, they spread
 * like random ones and a lookup examines a few slots on average (about 8.5 expected for a miss
 * at 3/4 load), instead of one long probe run that every frame for an unknown id would scan. */
#ifndef CRPC_IDMAP_H
#define CRPC_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct crpc__idmap_slot {
  uint32_t key;  /* 0: empty */
  uint32_t hash; /* of key, kept (in what would be padding) so that deleting and growing never
                    hash again */
  void *value;
} crpc__idmap_slot;

typedef struct crpc__idmap {
  crpc__idmap_slot *slots;
  size_t cap; /* 0 or a power of two, at most 2^32 (slots are indexed by a 32-bit hash) */
  size_t count;
  uint64_t k0, k1; /* the hash key: secret, per table */
  uint32_t own_parity; /* ids of this parity are ours (not the peer's choice); 2: none */
} crpc__idmap;

/* An empty table with a fresh random key (the system's random source; should it fail, a key
 * derived from the clock and the table's address). Allocates nothing. */
void crpc__idmap_init(crpc__idmap *m);
/* An empty table with the given key (tests and benchmarks: reproducible slots). */
void crpc__idmap_init_key(crpc__idmap *m, uint64_t k0, uint64_t k1);
/* Ids of this parity (1: odd, 0: even) are the table owner's own, given out in sequence: they
 * are hashed without the key, at less cost and with no collisions among them. Before any put. */
void crpc__idmap_set_own(crpc__idmap *m, uint32_t parity);
/* Releases the slots; the table is empty and usable again, with the same key. */
void crpc__idmap_free(crpc__idmap *m);
/* 0, or -1 when out of memory. The key must be non-zero and not present. */
int crpc__idmap_put(crpc__idmap *m, uint32_t key, void *value);
void *crpc__idmap_get(const crpc__idmap *m, uint32_t key);
/* Removes key and returns its value, or NULL when absent. */
void *crpc__idmap_del(crpc__idmap *m, uint32_t key);
/* Removes and returns any one entry (*key set), or NULL when empty: for draining a table while
 * the callbacks run for each entry may add or remove others. */
void *crpc__idmap_pop(crpc__idmap *m, uint32_t *key);
/* Slots a lookup of key examines (1 for a hit in its home slot or a miss on an empty one; 0 for
 * an empty table): the cost measure of tests/unit/test_idmap.c. */
size_t crpc__idmap_probes(const crpc__idmap *m, uint32_t key);

#endif
