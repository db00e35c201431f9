#include "base/idmap.h"

#include <uv.h>

#include "base/alloc.h"

/* The slot hash: a keyed mixer, the id xored with one secret key and multiplied by another (odd)
 * over 64 bits, then folded and mixed by a fixed multiply (the finalizer of MurmurHash3/
 * splitmix64). Ids that differ anywhere, high bits included, land on slots that depend on the
 * secret keys through the first multiply's upper half, which a peer neither sees nor can
 * compute; about 10 instructions. (SipHash-1-3 was measured at ~95 more per operation, several
 * hundred per call on each side, for a lookup that already examines only a few slots.) */
static uint32_t keyed_hash(const crpc__idmap *m, uint32_t key) {
  uint64_t x = ((uint64_t)key ^ m->k0) * (m->k1 | 1u);
  x ^= x >> 32;
  x *= UINT64_C(0xd6e8feb86659fd93);
  x ^= x >> 32;
  return (uint32_t)x;
}

/* The ids this side starts calls with (crpc__idmap_set_own) come from its own counter, in
 * sequence, so the peer chooses none of them: they take Fibonacci hashing, whose low bits put
 * ids in sequence on distinct slots (no probe run at all), and which costs one multiply. The
 * peer still chooses which of our ids it names in a frame, but can only land on the runs our
 * own ids and its keyed ones form, which stay short. W2 (64 calls in flight on a client):
 * ~120 instructions per call less than the keyed hash, on the client. */
static uint32_t hash_of(const crpc__idmap *m, uint32_t key) {
  if ((key & 1u) == m->own_parity) return key * UINT32_C(2654435761);
  return keyed_hash(m, key);
}

/* splitmix64: spreads the fallback key's inputs over all bits. */
static uint64_t mix64(uint64_t x) {
  x += UINT64_C(0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

void crpc__idmap_init_key(crpc__idmap *m, uint64_t k0, uint64_t k1) {
  m->slots = NULL;
  m->cap = 0;
  m->count = 0;
  m->k0 = k0;
  m->k1 = k1;
  m->own_parity = 2; /* none until crpc__idmap_set_own */
}

void crpc__idmap_set_own(crpc__idmap *m, uint32_t parity) { m->own_parity = parity & 1u; }

void crpc__idmap_init(crpc__idmap *m) {
  uint64_t k[2];
  /* Synchronous (no loop, no callback): getrandom(2) or /dev/urandom, a few hundred ns. */
  if (uv_random(NULL, NULL, k, sizeof k, 0, NULL) != 0) {
    uint64_t t = uv_hrtime();
    k[0] = mix64(t ^ (uint64_t)(uintptr_t)m);
    k[1] = mix64(k[0] ^ t);
  }
  crpc__idmap_init_key(m, k[0], k[1]);
}

void crpc__idmap_free(crpc__idmap *m) {
  crpc__free(m->slots);
  m->slots = NULL;
  m->cap = 0;
  m->count = 0;
}

static void insert(crpc__idmap_slot *slots, size_t cap, crpc__idmap_slot s) {
  size_t i = s.hash & (cap - 1);
  while (slots[i].key) i = (i + 1) & (cap - 1);
  slots[i] = s;
}

static int resize(crpc__idmap *m, size_t cap) {
  if (cap - 1 > UINT32_MAX) return -1; /* unreachable in practice: 2^32 slots are 64 GiB */
  crpc__idmap_slot *slots = crpc__calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key) insert(slots, cap, m->slots[i]);
  crpc__free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

int crpc__idmap_put(crpc__idmap *m, uint32_t key, void *value) {
  if ((m->count + 1) * 4 > m->cap * 3 && resize(m, m->cap ? m->cap * 2 : 16) != 0) return -1;
  crpc__idmap_slot s = {key, hash_of(m, key), value};
  insert(m->slots, m->cap, s);
  m->count++;
  return 0;
}

static size_t find(const crpc__idmap *m, uint32_t key) {
  if (!m->cap || !key) return SIZE_MAX;
  size_t i = hash_of(m, key) & (m->cap - 1);
  while (m->slots[i].key) {
    if (m->slots[i].key == key) return i;
    i = (i + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

size_t crpc__idmap_probes(const crpc__idmap *m, uint32_t key) {
  if (!m->cap) return 0;
  size_t n = 1;
  for (size_t i = hash_of(m, key) & (m->cap - 1); m->slots[i].key && m->slots[i].key != key;
       i = (i + 1) & (m->cap - 1))
    n++;
  return n;
}

void *crpc__idmap_get(const crpc__idmap *m, uint32_t key) {
  size_t i = find(m, key);
  return i == SIZE_MAX ? NULL : m->slots[i].value;
}

static void remove_at(crpc__idmap *m, size_t i) {
  size_t mask = m->cap - 1;
  /* Backward-shift: pull later members of the probe run into the hole. */
  for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
    size_t home = m->slots[j].hash & mask;
    /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
    int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = 0;
  m->slots[i].hash = 0;
  m->slots[i].value = NULL;
  /* Keep a small table for the next call (a calloc and a free per call otherwise); give back a
   * big one once it empties. */
  if (--m->count == 0 && m->cap > 1024) crpc__idmap_free(m);
}

void *crpc__idmap_del(crpc__idmap *m, uint32_t key) {
  size_t i = find(m, key);
  if (i == SIZE_MAX) return NULL;
  void *v = m->slots[i].value;
  remove_at(m, i);
  return v;
}

void *crpc__idmap_pop(crpc__idmap *m, uint32_t *key) {
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key) {
      void *v = m->slots[i].value;
      *key = m->slots[i].key;
      remove_at(m, i);
      return v;
    }
  }
  return NULL;
}
