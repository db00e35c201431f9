/* Per-call bump allocator, handed to protobuf-c as a ProtobufCAllocator so that a decoded message
 * costs no malloc in steady state: its memory comes from a small inline block and, past that,
 * from chunks that are kept across resets up to a bound. Freeing single objects is a no-op; the
 * whole arena is released at once when the call ends.
 *
 * Decoding is budgeted (crpc__decode_budget): protobuf-c turns some wire shapes into far more
 * memory than they take on the wire (a 2-byte unknown field costs it about 80 bytes, an empty
 * sub-message its whole C struct, a singular sub-message sent many times a merge that copies what
 * came before), so every decode is given a budget proportional to the message's wire size, and a
 * message past it is refused. Two counts are kept:
 *   - spent: everything protobuf-c asked for, counting what it freed again before returning (its
 *            scan tables, merged-away copies). Checked at every allocation: one past the budget
 *            fails, which makes protobuf-c give up (NULL). This bounds the work of a decode and
 *            the memory it takes while it runs;
 *   - held:  what the decoded message keeps, i.e. what a call holding it pins: bump bytes
 *            (rounding, and the end of a block left behind when a new one starts, included) plus
 *            large blocks still allocated. Checked once the message is complete
 *            (crpc__decode_budget_check); a message over it is refused too.
 * Blocks of CRPC__DECODE_BIG bytes or more (protobuf-c's scan tables among them: it frees them
 * before returning) get a malloc of their own, so that freeing them gives the memory back and
 * credits `held`; smaller frees stay a no-op (those bytes stay counted). */
#ifndef CRPC_ARENA_H
#define CRPC_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define CRPC__ARENA_INLINE 256
#define CRPC__ARENA_KEEP 65536 /* bytes of chunk memory an idle arena may keep for reuse */
#define CRPC__DECODE_BIG 1024  /* decode allocations this large are blocks of their own */
/* The budget of a message of `len` wire bytes: held <= factor * len + CRPC__DECODE_SLACK, and
 * spent <= that + CRPC__DECODE_SCRATCH * len + CRPC__DECODE_SLACK. protobuf-c's scan tables take
 * 32 bytes per field on LP64 in blocks that double, so at most 64 bytes per field of at least 2
 * bytes: 32 per wire byte. */
#define CRPC__DECODE_SLACK 65536
#define CRPC__DECODE_SCRATCH 32

typedef struct crpc__arena_chunk crpc__arena_chunk;

/* A set of large blocks (pointer -> size), open addressing; the blocks are malloc'd. */
typedef struct crpc__bigset {
  struct crpc__big *slots; /* cap entries, or NULL */
  size_t cap;              /* 0 or a power of two */
  size_t count;
} crpc__bigset;

typedef struct crpc__decode_budget {
  size_t held, held_max;
  size_t spent, spent_max;
  int over;  /* an allocation was refused for the budget (not for lack of memory) */
  int nomem; /* an allocation failed for lack of memory */
} crpc__decode_budget;

typedef struct crpc__arena {
  ProtobufCAllocator pb; /* pass &arena.pb to protobuf_c_message_unpack() */
  unsigned char *cur;    /* next free byte in the current block */
  size_t left;           /* bytes left there */
  crpc__arena_chunk *chunks; /* malloc'd blocks in use, newest first */
  crpc__arena_chunk *spare;  /* one block kept from an earlier use, reused before malloc */
  struct crpc__arena_owned *owned; /* blocks adopted with crpc__arena_adopt() */
  crpc__bigset big;          /* large blocks allocated through pb */
  crpc__decode_budget budget; /* what pb may still allocate (unlimited unless armed) */
  _Alignas(max_align_t) unsigned char inline_block[CRPC__ARENA_INLINE];
} crpc__arena;

void crpc__arena_init(crpc__arena *a);
/* Returns memory aligned for any type, or NULL when out of memory. */
void *crpc__arena_alloc(crpc__arena *a, size_t n);
/* The arena takes block (malloc'd) and frees it with everything else, so that a decoded message
 * may point into it. 0, or -1 when out of memory (block is then still the caller's). */
int crpc__arena_adopt(crpc__arena *a, void *block);
/* Heap bytes the arena holds for what was allocated since its last reset: its chunks in use
 * (headers included) and the large blocks allocated through pb, not the inline block, the spare
 * or adopted blocks. */
size_t crpc__arena_footprint(const crpc__arena *a);
/* Forgets every allocation; keeps one block of at most CRPC__ARENA_KEEP bytes as the spare.
 * The budget is disarmed. */
void crpc__arena_reset(crpc__arena *a);
/* Releases everything. */
void crpc__arena_destroy(crpc__arena *a);

/* len * k + c, saturating at SIZE_MAX. */
static inline size_t crpc__budget_of(size_t len, uint64_t k, uint64_t c) {
  uint64_t v = (uint64_t)len <= UINT32_MAX && k <= UINT32_MAX ? (uint64_t)len * k : UINT64_MAX;
  v = v > UINT64_MAX - c ? UINT64_MAX : v + c;
  return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* Arms b for decoding one message of `len` wire bytes with the given factor (counts from 0).
 * Inline, as the check below: every decode runs them. */
static inline void crpc__decode_budget_arm(crpc__decode_budget *b, size_t len, unsigned factor) {
  b->held = 0;
  b->spent = 0;
  b->over = 0;
  b->nomem = 0;
  b->held_max = crpc__budget_of(len, factor, CRPC__DECODE_SLACK);
  b->spent_max =
      crpc__budget_of(len, (uint64_t)factor + CRPC__DECODE_SCRATCH, 2 * CRPC__DECODE_SLACK);
}

/* After protobuf-c returned a message decoded under b: 0 when what it keeps is within the
 * budget, else -1 with b->over set (the caller then refuses the message). */
static inline int crpc__decode_budget_check(crpc__decode_budget *b) {
  if (b->held <= b->held_max) return 0;
  b->over = 1;
  return -1;
}
/* Arms the arena's pb allocator: see crpc__decode_budget_arm. */
static inline void crpc__arena_budget(crpc__arena *a, size_t len, unsigned factor) {
  crpc__decode_budget_arm(&a->budget, len, factor);
}

/* A budgeted malloc allocator for messages that become the caller's (blocking calls and streams):
 * everything comes from malloc, so the result is freed with
 * protobuf_c_message_free_unpacked(m, NULL) as usual. */
typedef struct crpc__heap_pb {
  ProtobufCAllocator pb;
  crpc__decode_budget budget;
  crpc__bigset big; /* large blocks, so that their frees are credited */
} crpc__heap_pb;
void crpc__heap_pb_init(crpc__heap_pb *h, size_t len, unsigned factor);
/* Forgets the blocks (they are the message's, or freed), releasing the set. */
void crpc__heap_pb_done(crpc__heap_pb *h);

/* Why crpc__unpack_budgeted returned NULL. */
enum crpc__decode_fail { CRPC__DECODE_BAD, CRPC__DECODE_OVER, CRPC__DECODE_NOMEM };

/* Unpacks `len` bytes of `data` as `desc` within the budget of `factor`: into `arena` (released
 * with it), or, when arena is NULL, onto the heap for the caller, who frees the message with
 * protobuf_c_message_free_unpacked(m, NULL). NULL when the bytes do not decode, when they are
 * over the budget, or when memory ran out; *why (enum crpc__decode_fail) says which. */
ProtobufCMessage *crpc__unpack_budgeted(const ProtobufCMessageDescriptor *desc, crpc__arena *arena,
                                        unsigned factor, size_t len, const uint8_t *data,
                                        int *why);

#endif
