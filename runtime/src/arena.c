#include "arena.h"

#include <stdalign.h>
#include <stdint.h>

#include "alloc.h"

struct crpc__arena_chunk {
  crpc__arena_chunk *next;
  size_t size; /* usable bytes after the header */
  _Alignas(max_align_t) unsigned char data[];
};

typedef struct crpc__arena_owned {
  struct crpc__arena_owned *next;
  void *block;
} crpc__arena_owned;

static void *pb_alloc(void *ud, size_t n) { return crpc__arena_alloc(ud, n); }
static void pb_free(void *ud, void *p) {
  (void)ud; /* released with the arena */
  (void)p;
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
}

static size_t round_up(size_t n) {
  size_t al = alignof(max_align_t);
  return (n + al - 1) & ~(al - 1);
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
  return n;
}

void crpc__arena_reset(crpc__arena *a) {
  /* The list lives in the arena's own blocks: walk it before they go. */
  for (crpc__arena_owned *o = a->owned; o; o = o->next) free(o->block);
  a->owned = NULL;
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
}
