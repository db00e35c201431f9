#include "base/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

struct crpc__arena_chunk {
  crpc__arena_chunk *next;
  size_t size; /* usable bytes after the header */
  _Alignas(max_align_t) unsigned char data[];
};

typedef struct crpc__arena_owned {
  struct crpc__arena_owned *next;
  void *block;
} crpc__arena_owned;

static size_t round_up(size_t n) {
  size_t al = alignof(max_align_t);
  return (n + al - 1) & ~(al - 1);
}

/* ---- Large blocks: pointer -> size, linear probing, at most half full ------------------------ */

struct crpc__big {
  void *p; /* NULL: empty slot */
  size_t n;
};

#define BIGSET_KEEP 64 /* slots an arena keeps across resets */

/* The pointers are malloc's, not a peer's: a fixed mix spreads them well. */
static size_t big_slot(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= UINT64_C(0xff51afd7ed558ccd);
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

static void big_place(struct crpc__big *slots, size_t cap, void *p, size_t n) {
  size_t i = big_slot(p, cap);
  while (slots[i].p) i = (i + 1) & (cap - 1);
  slots[i].p = p;
  slots[i].n = n;
}

static int bigset_put(crpc__bigset *s, void *p, size_t n) {
  if ((s->count + 1) * 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof *s->slots) return -1;
    struct crpc__big *slots = crpc__calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i].p) big_place(slots, cap, s->slots[i].p, s->slots[i].n);
    crpc__free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  big_place(s->slots, s->cap, p, n);
  s->count++;
  return 0;
}

/* Removes p: its size, or 0 when p is not in the set. */
static size_t bigset_take(crpc__bigset *s, const void *p) {
  if (s->count == 0) return 0;
  size_t mask = s->cap - 1, i = big_slot(p, s->cap);
  while (s->slots[i].p != p) {
    if (!s->slots[i].p) return 0;
    i = (i + 1) & mask;
  }
  size_t n = s->slots[i].n;
  s->count--;
  /* Backward-shift deletion: move up every later entry of the run that may not skip the hole. */
  for (size_t j = i;;) {
    s->slots[i].p = NULL;
    for (;;) {
      j = (j + 1) & mask;
      if (!s->slots[j].p) return n;
      size_t k = big_slot(s->slots[j].p, s->cap);
      /* Entry j stays unless its home k lies cyclically outside (i, j]. */
      int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) break;
    }
    s->slots[i] = s->slots[j];
    i = j;
  }
}

/* Frees every block (when free_blocks) and empties the set, keeping small slot arrays. */
static void bigset_clear(crpc__bigset *s, int free_blocks) {
  if (s->count) {
    for (size_t i = 0; i < s->cap; i++) {
      if (s->slots[i].p && free_blocks) crpc__free(s->slots[i].p);
      s->slots[i].p = NULL;
    }
    s->count = 0;
  }
  if (s->cap > BIGSET_KEEP) {
    crpc__free(s->slots);
    s->slots = NULL;
    s->cap = 0;
  }
}

/* ---- Budget ------------------------------------------------------------------------------------ */

static void budget_disarm(crpc__decode_budget *b) {
  b->held = 0;
  b->spent = 0;
  b->over = 0;
  b->nomem = 0;
  b->held_max = SIZE_MAX;
  b->spent_max = SIZE_MAX;
}

/* `spent` is checked at every allocation (it also bounds the peak while protobuf-c works), `held`
 * once the message is complete (crpc__decode_budget_check): protobuf-c's scan tables are large
 * while it works and gone when it returns. */
static int budget_take(crpc__decode_budget *b, size_t n) {
  if (n > b->spent_max - b->spent) {
    b->over = 1;
    return -1;
  }
  b->held += n; /* held <= spent <= spent_max: cannot wrap */
  b->spent += n;
  return 0;
}

static void budget_give(crpc__decode_budget *b, size_t n) { b->held -= n < b->held ? n : b->held; }

/* ---- The arena's allocator for protobuf-c ------------------------------------------------------ */

static void *pb_alloc(void *ud, size_t n) {
  crpc__arena *a = ud;
  if (n >= CRPC__DECODE_BIG) {
    if (budget_take(&a->budget, n) != 0) return NULL;
    void *p = crpc__malloc(n);
    if (p && bigset_put(&a->big, p, n) != 0) {
      crpc__free(p);
      p = NULL;
    }
    if (!p) a->budget.nomem = 1;
    return p;
  }
  /* A bump allocation; when it does not fit, what is left of the current block is lost too. */
  size_t r = round_up(n ? n : 1);
  if (r <= a->left) { /* the usual case, as crpc__arena_alloc would do it */
    if (budget_take(&a->budget, r) != 0) return NULL;
    void *p = a->cur;
    a->cur += r;
    a->left -= r;
    return p;
  }
  if (budget_take(&a->budget, r + a->left) != 0) return NULL;
  void *p = crpc__arena_alloc(a, n);
  if (!p) a->budget.nomem = 1;
  return p;
}

static void pb_free(void *ud, void *p) {
  crpc__arena *a = ud;
  size_t n = p ? bigset_take(&a->big, p) : 0;
  if (n) {
    budget_give(&a->budget, n);
    crpc__free(p);
  }
  /* anything else is released with the arena */
}

void crpc__arena_init(crpc__arena *a) {
  a->pb.alloc = pb_alloc;
  a->pb.free = pb_free;
  a->pb.allocator_data = a;
  a->cur = a->inline_block;
  a->left = sizeof a->inline_block;
  a->chunks = NULL;
  a->spare = NULL;
  a->owned = NULL;
  memset(&a->big, 0, sizeof a->big);
  budget_disarm(&a->budget);
}

void *crpc__arena_alloc(crpc__arena *a, size_t n) {
  if (n == 0) n = 1;
  if (n > SIZE_MAX / 2) return NULL;
  n = round_up(n);
  if (n > a->left) {
    crpc__arena_chunk *c = a->spare;
    if (c && c->size >= n) {
      a->spare = NULL;
    } else {
      size_t want = n > 4096 ? n : 4096;
      c = crpc__malloc(sizeof *c + want);
      if (!c) return NULL;
      c->size = want;
    }
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c->data;
    a->left = c->size;
  }
  void *p = a->cur;
  a->cur += n;
  a->left -= n;
  return p;
}

static void keep_or_free(crpc__arena *a, crpc__arena_chunk *c) {
  if (c->size <= CRPC__ARENA_KEEP && (!a->spare || a->spare->size < c->size)) {
    if (a->spare) crpc__free(a->spare);
    a->spare = c;
  } else {
    crpc__free(c);
  }
}

int crpc__arena_adopt(crpc__arena *a, void *block) {
  crpc__arena_owned *o = crpc__arena_alloc(a, sizeof *o);
  if (!o) return -1;
  o->block = block;
  o->next = a->owned;
  a->owned = o;
  return 0;
}

size_t crpc__arena_footprint(const crpc__arena *a) {
  size_t n = 0;
  for (const crpc__arena_chunk *c = a->chunks; c; c = c->next) n += sizeof *c + c->size;
  for (size_t i = 0; i < a->big.cap; i++) n += a->big.slots[i].p ? a->big.slots[i].n : 0;
  return n;
}

void crpc__arena_reset(crpc__arena *a) {
  /* The list lives in the arena's own blocks: walk it before they go. */
  for (crpc__arena_owned *o = a->owned; o; o = o->next) free(o->block);
  a->owned = NULL;
  bigset_clear(&a->big, 1);
  budget_disarm(&a->budget);
  crpc__arena_chunk *c = a->chunks;
  while (c) {
    crpc__arena_chunk *next = c->next;
    keep_or_free(a, c);
    c = next;
  }
  a->chunks = NULL;
  a->cur = a->inline_block;
  a->left = sizeof a->inline_block;
}

void crpc__arena_destroy(crpc__arena *a) {
  crpc__arena_reset(a);
  crpc__free(a->spare);
  a->spare = NULL;
  crpc__free(a->big.slots);
  memset(&a->big, 0, sizeof a->big);
}

/* ---- The budgeted malloc allocator ------------------------------------------------------------- */

static void *heap_alloc(void *ud, size_t n) {
  crpc__heap_pb *h = ud;
  if (budget_take(&h->budget, n >= CRPC__DECODE_BIG ? n : round_up(n ? n : 1)) != 0) return NULL;
  void *p = crpc__malloc(n ? n : 1);
  if (p && n >= CRPC__DECODE_BIG && bigset_put(&h->big, p, n) != 0) {
    crpc__free(p);
    p = NULL;
  }
  if (!p) h->budget.nomem = 1;
  return p;
}

static void heap_free(void *ud, void *p) {
  crpc__heap_pb *h = ud;
  if (!p) return;
  budget_give(&h->budget, bigset_take(&h->big, p));
  crpc__free(p);
}

void crpc__heap_pb_init(crpc__heap_pb *h, size_t len, unsigned factor) {
  h->pb.alloc = heap_alloc;
  h->pb.free = heap_free;
  h->pb.allocator_data = h;
  memset(&h->big, 0, sizeof h->big);
  crpc__decode_budget_arm(&h->budget, len, factor);
}

void crpc__heap_pb_done(crpc__heap_pb *h) {
  crpc__free(h->big.slots);
  memset(&h->big, 0, sizeof h->big);
}

static int fail_reason(const crpc__decode_budget *b) {
  return b->over ? CRPC__DECODE_OVER : b->nomem ? CRPC__DECODE_NOMEM : CRPC__DECODE_BAD;
}

ProtobufCMessage *crpc__unpack_budgeted(const ProtobufCMessageDescriptor *desc, crpc__arena *arena,
                                        unsigned factor, size_t len, const uint8_t *data,
                                        int *why) {
  ProtobufCMessage *m;
  if (!arena) {
    crpc__heap_pb h;
    crpc__heap_pb_init(&h, len, factor);
    m = protobuf_c_message_unpack(desc, &h.pb, len, data);
    if (m && crpc__decode_budget_check(&h.budget) != 0) {
      protobuf_c_message_free_unpacked(m, &h.pb);
      m = NULL;
    }
    *why = fail_reason(&h.budget);
    crpc__heap_pb_done(&h);
    return m;
  }
  crpc__arena_budget(arena, len, factor);
  m = protobuf_c_message_unpack(desc, &arena->pb, len, data);
  if (m && crpc__decode_budget_check(&arena->budget) != 0) m = NULL;
  *why = fail_reason(&arena->budget);
  return m;
}
