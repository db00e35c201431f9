#include "idmap.h"

#include "alloc.h"

static size_t slot_of(uint32_t key, size_t cap) {
  return (size_t)((key * UINT32_C(2654435761)) & (uint32_t)(cap - 1));
}

void crpc__idmap_init(crpc__idmap *m) {
  m->slots = NULL;
  m->cap = 0;
  m->count = 0;
}

void crpc__idmap_free(crpc__idmap *m) {
  crpc__free(m->slots);
  crpc__idmap_init(m);
}

static void insert(crpc__idmap_slot *slots, size_t cap, uint32_t key, void *value) {
  size_t i = slot_of(key, cap);
  while (slots[i].key) i = (i + 1) & (cap - 1);
  slots[i].key = key;
  slots[i].value = value;
}

static int resize(crpc__idmap *m, size_t cap) {
  crpc__idmap_slot *slots = crpc__calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key) insert(slots, cap, m->slots[i].key, m->slots[i].value);
  crpc__free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

int crpc__idmap_put(crpc__idmap *m, uint32_t key, void *value) {
  if ((m->count + 1) * 4 > m->cap * 3 && resize(m, m->cap ? m->cap * 2 : 16) != 0) return -1;
  insert(m->slots, m->cap, key, value);
  m->count++;
  return 0;
}

static size_t find(const crpc__idmap *m, uint32_t key) {
  if (!m->cap || !key) return SIZE_MAX;
  size_t i = slot_of(key, m->cap);
  while (m->slots[i].key) {
    if (m->slots[i].key == key) return i;
    i = (i + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

void *crpc__idmap_get(const crpc__idmap *m, uint32_t key) {
  size_t i = find(m, key);
  return i == SIZE_MAX ? NULL : m->slots[i].value;
}

static void remove_at(crpc__idmap *m, size_t i) {
  size_t mask = m->cap - 1;
  /* Backward-shift: pull later members of the probe run into the hole. */
  for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
    size_t home = slot_of(m->slots[j].key, m->cap);
    /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
    int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = 0;
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
