/* Per-call bump allocator, handed to protobuf-c as a ProtobufCAllocator so that a decoded message
 * costs no malloc in steady state: its memory comes from a small inline block and, past that,
 * from chunks that are kept across resets up to a bound. Freeing single objects is a no-op; the
 * whole arena is released at once when the call ends. */
#ifndef CRPC_ARENA_H
#define CRPC_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#define CRPC__ARENA_INLINE 256
#define CRPC__ARENA_KEEP 65536 /* bytes of chunk memory an idle arena may keep for reuse */

typedef struct crpc__arena_chunk crpc__arena_chunk;

typedef struct crpc__arena {
  ProtobufCAllocator pb; /* pass &arena.pb to protobuf_c_message_unpack() */
  unsigned char *cur;    /* next free byte in the current block */
  size_t left;           /* bytes left there */
  crpc__arena_chunk *chunks; /* malloc'd blocks in use, newest first */
  crpc__arena_chunk *spare;  /* one block kept from an earlier use, reused before malloc */
  struct crpc__arena_owned *owned; /* blocks adopted with crpc__arena_adopt() */
  _Alignas(max_align_t) unsigned char inline_block[CRPC__ARENA_INLINE];
} crpc__arena;

void crpc__arena_init(crpc__arena *a);
/* Returns memory aligned for any type, or NULL when out of memory. */
void *crpc__arena_alloc(crpc__arena *a, size_t n);
/* The arena takes block (malloc'd) and frees it with everything else, so that a decoded message
 * may point into it. 0, or -1 when out of memory (block is then still the caller's). */
int crpc__arena_adopt(crpc__arena *a, void *block);
/* Heap bytes the arena holds for what was allocated since its last reset: its chunks in use
 * (headers included), not the inline block, the spare or adopted blocks. */
size_t crpc__arena_footprint(const crpc__arena *a);
/* Forgets every allocation; keeps one block of at most CRPC__ARENA_KEEP bytes as the spare. */
void crpc__arena_reset(crpc__arena *a);
/* Releases everything. */
void crpc__arena_destroy(crpc__arena *a);

#endif
