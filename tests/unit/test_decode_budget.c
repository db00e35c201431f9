/* The decode budget (arena.h, option MAX_DECODE_RATIO): the shapes protobuf-c turns into the most
 * memory per wire byte (2-byte unknown fields, empty sub-messages and map entries, a singular
 * sub-message sent over and over, which protobuf-c merges) are refused at the default ratio, with
 * the budget flag set; ordinary shapes (a few unknown fields, repeated scalars packed or not,
 * short strings, small sub-messages) decode; and in every case, refused or not, what the arena
 * holds afterwards (what a call holding the message pins) stays within the documented bound,
 * ratio x size + 64 KiB, plus the arena's own chunk overhead. The same holds for the budgeted
 * malloc allocator of blocking callers (crpc__heap_pb), whose result is freed with
 * protobuf_c_message_free_unpacked(m, NULL). Types: tests/unit/budget.proto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"
#include "budget.pb-c.h"
#include "crpc/options.h"

#define SHAPES (&budget__shapes__descriptor)
#define RATIO 16u /* the option's default, checked below */
#define SIZE (1u << 20)

/* ---- wire bytes ---------------------------------------------------------------------------- */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_varint(buf *b, uint64_t v) {
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  put(b, t, n);
}

/* `unit` (a whole field) repeated until the message is `size` bytes or just under. */
static void repeat(buf *b, const uint8_t *unit, size_t n, size_t size) {
  while (b->len + n <= size) put(b, unit, n);
}

/* Each builder writes one message of about `size` bytes. */
static void unknown2(buf *b, size_t size) { /* hold = 1, then field 15 (unknown) = 0, ... */
  put(b, "\x08\x01", 2);
  repeat(b, (const uint8_t *)"\x78\x00", 2, size);
}
static void empties(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x12\x00", 2, size); }
static void kv_empty(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x3a\x00", 2, size); }
static void points_empty(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x4a\x00", 2, size); }
static void child_again(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x32\x00", 2, size); }
/* child { ints: 1 } sent over and over: protobuf-c merges each into the last, copying the ints. */
static void child_merge(buf *b, size_t size) {
  repeat(b, (const uint8_t *)"\x32\x02\x18\x01", 4, size);
}
static void ints(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x18\x01", 2, size); }
static void flags(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x40\x01", 2, size); }
static void packed64(buf *b, size_t size) { /* packed64: [0, 0, ...] */
  size_t n = size - 8;
  put(b, "\x22", 1);
  put_varint(b, n);
  uint8_t *zeros = calloc(1, n);
  assert_non_null(zeros);
  put(b, zeros, n);
  free(zeros);
}
static void points(buf *b, size_t size) { /* points { x: 1 } */
  repeat(b, (const uint8_t *)"\x4a\x02\x08\x01", 4, size);
}
static void strs_empty(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x2a\x00", 2, size); }
static void strs_short(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x2a\x04" "abcd", 6, size); }
static void blobs_empty(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x52\x00", 2, size); }
static void name_again(buf *b, size_t size) { repeat(b, (const uint8_t *)"\x5a\x00", 2, size); }
static void payload(buf *b, size_t size) { /* one large bytes field */
  size_t n = size - 8;
  put(b, "\x62", 1);
  put_varint(b, n);
  uint8_t *data = malloc(n);
  assert_non_null(data);
  memset(data, 'x', n);
  put(b, data, n);
  free(data);
}

typedef struct shape {
  const char *name;
  void (*build)(buf *b, size_t size);
  int refused;   /* at the default ratio */
  int quadratic; /* protobuf-c's work grows with the square of the size: measured on 16 KiB */
} shape;

static const shape shapes[] = {
    {"2-byte unknown fields", unknown2, 1, 0},
    {"empty sub-messages", empties, 1, 0},
    {"empty map entries", kv_empty, 1, 0},
    {"empty points", points_empty, 1, 0},
    {"a singular sub-message sent again and again", child_again, 1, 0},
    {"... each merged with a repeated field", child_merge, 1, 1},
    {"repeated int32, not packed, 1-byte values", ints, 0, 0},
    {"repeated bool, not packed", flags, 0, 0},
    {"packed int64 zeros", packed64, 0, 0},
    {"points { x: 1 }", points, 0, 0},
    {"empty strings", strs_empty, 0, 0},
    {"4-byte strings", strs_short, 0, 0},
    {"empty bytes", blobs_empty, 0, 0},
    {"a singular string sent again and again", name_again, 0, 0},
    {"one large bytes field", payload, 0, 0},
};

/* ---- bounds ---------------------------------------------------------------------------------- */

static size_t held_bound(size_t len, unsigned ratio) { return ratio * len + CRPC__DECODE_SLACK; }

/* What the arena may hold for a budget of b: its chunks carry a 16-byte header per 4 KiB or more,
 * and the last one may be partly unused. */
static size_t footprint_bound(size_t b) { return b + b / 256 + 8192; }

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_default_ratio(void **state) {
  (void)state;
  assert_int_equal(crpc_option_default(CRPC_OPT_MAX_DECODE_RATIO), RATIO);
}

/* Decodes data into a fresh arena armed with ratio: the message or NULL, *over, *held (the
 * arena's footprint afterwards). The arena is left for the caller to destroy. */
static ProtobufCMessage *arena_decode(crpc__arena *a, const buf *b, unsigned ratio, int *over,
                                      size_t *held) {
  crpc__arena_init(a);
  if (ratio) crpc__arena_budget(a, b->len, ratio);
  ProtobufCMessage *m = protobuf_c_message_unpack(SHAPES, &a->pb, b->len, b->p);
  *over = a->budget.over;
  *held = crpc__arena_footprint(a);
  return m;
}

static void test_shapes_arena(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    buf b = {0};
    s->build(&b, SIZE);
    /* Without a budget: how much protobuf-c makes of it (the large blocks it frees come back). */
    crpc__arena a;
    int over;
    size_t free_held;
    buf small = {0};
    if (s->quadratic) s->build(&small, 16384);
    const buf *measured = s->quadratic ? &small : &b;
    ProtobufCMessage *m = arena_decode(&a, measured, 0, &over, &free_held);
    assert_non_null(m);
    assert_false(over);
    crpc__arena_destroy(&a);
    double amplification = (double)free_held / (double)measured->len;
    free(small.p);
    /* With the default budget. */
    size_t held;
    m = arena_decode(&a, &b, RATIO, &over, &held);
    if (m && crpc__decode_budget_check(&a.budget) != 0) m = NULL; /* as the runtime does */
    over = a.budget.over;
    print_message("%-45s %8zu bytes: %5.1fx without a budget, %s, %9zu bytes in the arena\n",
                  s->name, b.len, amplification, m ? "decoded" : "refused", held);
    size_t spent_bound = held_bound(b.len, RATIO) + CRPC__DECODE_SCRATCH * b.len + CRPC__DECODE_SLACK;
    assert_true(a.budget.spent <= spent_bound);
    if (s->refused) {
      /* A worst shape really is past the ratio without a budget, and refused with one. What the
       * arena holds then is released with the call at once; it is bounded by `spent`. */
      assert_true(amplification > RATIO);
      assert_null(m);
      assert_true(over);
      assert_true(held <= footprint_bound(spent_bound));
    } else {
      /* Decoded: what a call holding it pins is within the documented bound. */
      assert_non_null(m);
      assert_false(over);
      assert_true(a.budget.held <= held_bound(b.len, RATIO));
      if (held > footprint_bound(held_bound(b.len, RATIO)))
        fail_msg("%s: arena holds %zu bytes, bound %zu", s->name, held,
                 footprint_bound(held_bound(b.len, RATIO)));
    }
    crpc__arena_destroy(&a);
    free(b.p);
  }
}

/* The same with the budgeted malloc allocator: same verdicts; a decoded message is the caller's
 * (free_unpacked with NULL), a refused one leaves nothing behind (LeakSanitizer). */
static void test_shapes_heap(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    buf b = {0};
    s->build(&b, SIZE);
    crpc__heap_pb h;
    crpc__heap_pb_init(&h, b.len, RATIO);
    ProtobufCMessage *m = protobuf_c_message_unpack(SHAPES, &h.pb, b.len, b.p);
    if (m && crpc__decode_budget_check(&h.budget) != 0) {
      protobuf_c_message_free_unpacked(m, &h.pb);
      m = NULL;
    }
    if (s->refused) {
      assert_null(m);
      assert_true(h.budget.over);
    } else {
      if (!m) fail_msg("%s: refused by the heap budget", s->name);
      assert_false(h.budget.over);
      assert_true(h.budget.held <= held_bound(b.len, RATIO));
      protobuf_c_message_free_unpacked(m, NULL);
    }
    crpc__heap_pb_done(&h);
    free(b.p);
  }
}

/* The headline case at the default message limit: 4 MiB of 2-byte unknown fields. */
static void test_unknown_fields_4mib(void **state) {
  (void)state;
  buf b = {0};
  unknown2(&b, 4u << 20);
  crpc__arena a;
  int over;
  size_t held;
  ProtobufCMessage *m = arena_decode(&a, &b, 0, &over, &held);
  assert_non_null(m);
  print_message("4 MiB of unknown fields: %zu bytes held without a budget\n", held);
  crpc__arena_destroy(&a);
  m = arena_decode(&a, &b, RATIO, &over, &held);
  if (m && crpc__decode_budget_check(&a.budget) != 0) m = NULL;
  assert_null(m);
  assert_true(a.budget.over);
  print_message("... refused at ratio %u, %zu bytes in the arena when it gave up\n", RATIO, held);
  crpc__arena_destroy(&a);
  /* A ratio above the shape's amplification lets it through, within that ratio's bound. */
  m = arena_decode(&a, &b, 64, &over, &held);
  assert_non_null(m);
  assert_int_equal(crpc__decode_budget_check(&a.budget), 0);
  assert_int_equal(((Budget__Shapes *)m)->base.n_unknown_fields, (b.len - 2) / 2);
  assert_true(held <= footprint_bound(held_bound(b.len, 64)));
  crpc__arena_destroy(&a);
  free(b.p);
}

/* An ordinary message with a few unknown fields (a newer peer's) decodes, unknown fields kept. */
static void test_few_unknown_fields(void **state) {
  (void)state;
  buf b = {0};
  put(&b, "\x08\x01", 2);                          /* hold */
  put(&b, "\x5a\x05hello", 7);                     /* name */
  put(&b, "\xa0\x06\x96\x01", 4);                  /* 100: varint 150 */
  put(&b, "\xaa\x06\x03xyz", 6);                   /* 101: "xyz" */
  put(&b, "\xb5\x06\x01\x02\x03\x04", 6);          /* 102: fixed32 */
  put(&b, "\xb9\x06\x01\x02\x03\x04\x05\x06\x07\x08", 10); /* 103: fixed64 */
  crpc__arena a;
  int over;
  size_t held;
  Budget__Shapes *m = (Budget__Shapes *)arena_decode(&a, &b, 1, &over, &held);
  assert_non_null(m);
  assert_true(m->hold);
  assert_string_equal(m->name, "hello");
  assert_int_equal(m->base.n_unknown_fields, 4);
  crpc__arena_destroy(&a);
  crpc__heap_pb h;
  crpc__heap_pb_init(&h, b.len, 1);
  m = (Budget__Shapes *)protobuf_c_message_unpack(SHAPES, &h.pb, b.len, b.p);
  crpc__heap_pb_done(&h);
  assert_non_null(m);
  assert_int_equal(m->base.n_unknown_fields, 4);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  free(b.p);
}

/* Large blocks allocated and freed through the arena's allocator in a scrambled order: each free
 * gives its bytes back (held and footprint), the rest is released by the reset. */
static void test_large_blocks(void **state) {
  (void)state;
  crpc__arena a;
  crpc__arena_init(&a);
  crpc__arena_budget(&a, 1u << 20, 64);
  enum { N = 500 };
  void *p[N];
  size_t total = 0;
  for (size_t i = 0; i < N; i++) {
    size_t n = CRPC__DECODE_BIG + i * 7;
    p[i] = a.pb.alloc(a.pb.allocator_data, n);
    assert_non_null(p[i]);
    memset(p[i], (int)i, n);
    total += n;
  }
  assert_int_equal(a.budget.held, total);
  assert_int_equal(crpc__arena_footprint(&a), total);
  for (size_t k = 0; k < N; k++) {
    size_t i = (k * 211) % N; /* 211 is prime to N: every block once */
    if (i % 3 == 0) continue;
    assert_int_equal(((unsigned char *)p[i])[0], (unsigned char)i);
    a.pb.free(a.pb.allocator_data, p[i]);
    total -= CRPC__DECODE_BIG + i * 7;
    assert_int_equal(a.budget.held, total);
  }
  assert_int_equal(crpc__arena_footprint(&a), total);
  /* Freeing what the set does not hold (an inner pointer, a bump block) changes nothing. */
  a.pb.free(a.pb.allocator_data, (char *)p[0] + 1);
  a.pb.free(a.pb.allocator_data, a.pb.alloc(a.pb.allocator_data, 10));
  assert_int_equal(crpc__arena_footprint(&a), total + 0 /* the bump block is inline */);
  for (size_t i = 0; i < N; i += 3) assert_int_equal(((unsigned char *)p[i])[7], (unsigned char)i);
  crpc__arena_reset(&a);
  assert_int_equal(crpc__arena_footprint(&a), 0);
  assert_int_equal(a.budget.held, 0);
  crpc__arena_destroy(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_ratio),
      cmocka_unit_test(test_shapes_arena),
      cmocka_unit_test(test_shapes_heap),
      cmocka_unit_test(test_unknown_fields_4mib),
      cmocka_unit_test(test_few_unknown_fields),
      cmocka_unit_test(test_large_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
