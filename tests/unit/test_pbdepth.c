/* Nesting-depth check: payloads at the limit pass and protobuf-c unpacks them to that depth, one
 * level more is refused, a million levels are refused on a 256 KiB thread stack, and every
 * malformed input is refused with the documented error. Inputs are checked from exactly-sized heap
 * copies, so AddressSanitizer reports any read past `len`. Wherever protobuf-c can unpack safely
 * (the check said 0), its result is compared with the check's. Types: tests/unit/pbdepth.proto. */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "wire/pbdepth.h"
#include "pbdepth.pb-c.h"

#define NODE (&pbdepth__node__descriptor)
#define SCALARS (&pbdepth__scalars__descriptor)
#define OUTER (&pbdepth__outer__descriptor)

/* Node field numbers, and the map entry's value field. */
enum { F_CHILD = 1, F_KIDS = 2, F_NAME = 3, F_M = 4, F_X = 5, F_ENTRY_VALUE = 2 };
enum { WT_VARINT = 0, WT_64 = 1, WT_LD = 2, WT_32 = 5 };

/* ---- helpers ---------------------------------------------------------------------------------*/

/* A growing byte buffer, written front to back. */
typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 16;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  if (n)
    memcpy(b->p + b->len, src, n);
  b->len += n;
}

/* Writes v as a varint into out (at least 10 bytes); returns its length. */
static size_t varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

static void put_varint(buf *b, uint64_t v) {
  uint8_t tmp[10];
  put(b, tmp, varint(tmp, v));
}

static void put_key(buf *b, uint32_t field, unsigned wire_type) {
  put_varint(b, (uint64_t)field << 3 | wire_type);
}

/* Length-delimited field `field` holding the bytes of `inner`. */
static void put_ld(buf *b, uint32_t field, const uint8_t *inner, size_t n) {
  put_key(b, field, WT_LD);
  put_varint(b, n);
  put(b, inner, n);
}

#define PUT_BYTES(b, ...)                                                                          \
  put((b), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

/* A message `levels` deep (the top-level one counts): each level holds the next in the field
 * fields[k % nfields], k = 0 for the outermost. Built back to front, so it costs O(size); the
 * result is trimmed to an exact-size heap block (free it). */
static uint8_t *chain_of(size_t levels, const uint32_t *fields, size_t nfields, size_t *len) {
  size_t cap = levels * 20 + 1, start = cap;
  uint8_t *p = malloc(cap);
  assert_non_null(p);
  for (size_t k = levels - 1; k-- > 0;) {
    uint8_t hdr[20];
    size_t n = varint(hdr, (uint64_t)fields[k % nfields] << 3 | WT_LD);
    n += varint(hdr + n, cap - start);
    assert_true(n <= start);
    start -= n;
    memcpy(p + start, hdr, n);
  }
  *len = cap - start;
  memmove(p, p + start, *len);
  uint8_t *exact = realloc(p, *len ? *len : 1);
  assert_non_null(exact);
  return exact;
}

static uint8_t *chain(size_t levels, uint32_t field, size_t *len) {
  return chain_of(levels, &field, 1, len);
}

/* The check on an exact-size heap copy of the bytes. */
static int check(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes, size_t len,
                 unsigned max_depth) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len)
    memcpy(copy, bytes, len);
  int rc = crpc__pb_depth_check(desc, copy, len, max_depth);
  free(copy);
  return rc;
}

/* Message levels of an unpacked Node, map entries included (protobuf-c recurses into them). */
static unsigned node_depth(const Pbdepth__Node *n) {
  if (n == NULL)
    return 0;
  unsigned d = node_depth(n->child);
  for (size_t i = 0; i < n->n_kids; i++) {
    unsigned k = node_depth(n->kids[i]);
    d = k > d ? k : d;
  }
  for (size_t i = 0; i < n->n_m; i++) {
    unsigned e = 1 + node_depth(n->m[i]->value);
    d = e > d ? e : d;
  }
  return 1 + d;
}

/* protobuf-c's view of the bytes as a Node: its depth, or 0 when it refuses them. Only call it on
 * bytes the check passed (or that are shallow by construction). */
static unsigned unpacked_depth(const uint8_t *bytes, size_t len) {
  ProtobufCMessage *m = protobuf_c_message_unpack(NODE, NULL, len, bytes);
  if (m == NULL)
    return 0;
  unsigned d = node_depth((const Pbdepth__Node *)m);
  protobuf_c_message_free_unpacked(m, NULL);
  return d;
}

static int unpacks(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes, size_t len) {
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, bytes);
  if (m != NULL)
    protobuf_c_message_free_unpacked(m, NULL);
  return m != NULL;
}

/* Packs a message into a new heap block of exactly its size. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *p = malloc(*len ? *len : 1);
  assert_non_null(p);
  assert_int_equal(protobuf_c_message_pack(m, p), *len);
  return p;
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- depth limits ----------------------------------------------------------------------------*/

static void test_empty(void **state) {
  (void)state;
  assert_int_equal(crpc__pb_depth_check(NODE, NULL, 0, 1), CRPC__PB_OK);
  assert_int_equal(crpc__pb_depth_check(NODE, NULL, 0, 0), CRPC__PB_OK);
  assert_int_equal(check(SCALARS, NULL, 0, 1), CRPC__PB_OK);
  assert_int_equal(unpacked_depth((const uint8_t *)"", 0), 1);
}

static void test_scalars_only(void **state) {
  (void)state;
  Pbdepth__Scalars s = PBDEPTH__SCALARS__INIT;
  int32_t packed[] = {1, -1, 300, INT32_MAX, INT32_MIN};
  uint8_t bytes[] = {0x0a, 0x02, 0x0a, 0x00}; /* Node nesting, were it a Node */
  s.a = -5;
  s.b = UINT64_MAX;
  s.c = 7;
  s.s = "\x0a\x02\x0a";
  s.d.data = bytes;
  s.d.len = sizeof bytes;
  s.n_packed = 5;
  s.packed = packed;
  s.e = 1.5;
  s.f = INT64_MIN;
  size_t len;
  uint8_t *p = pack(&s.base, &len);
  assert_int_equal(check(SCALARS, p, len, 1), CRPC__PB_OK);
  assert_true(unpacks(SCALARS, p, len));
  free(p);

  Pbdepth__Node n = PBDEPTH__NODE__INIT;
  n.name = "leaf";
  n.x = -1;
  p = pack(&n.base, &len);
  assert_int_equal(check(NODE, p, len, 1), CRPC__PB_OK);
  assert_int_equal(unpacked_depth(p, len), 1);
  free(p);
}

/* Exactly max_depth levels pass and protobuf-c sees that many; one more is refused. Limits above
 * 64 exercise the large stack. */
static void test_at_limit(void **state) {
  (void)state;
  static const unsigned limits[] = {1, 2, 3, 10, 63, 64, 65, 100, 1023, 1024};
  static const uint32_t fields[] = {F_CHILD, F_KIDS};
  for (size_t f = 0; f < 2; f++) {
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
      size_t len;
      uint8_t *p = chain(limits[i], fields[f], &len);
      assert_int_equal(check(NODE, p, len, limits[i]), CRPC__PB_OK);
      assert_int_equal(unpacked_depth(p, len), limits[i]);
      free(p);
      p = chain(limits[i] + 1, fields[f], &len);
      assert_int_equal(check(NODE, p, len, limits[i]), CRPC__PB_TOO_DEEP);
      if (limits[i] < CRPC__PB_MAX_DEPTH_CAP)
        assert_int_equal(check(NODE, p, len, limits[i] + 1), CRPC__PB_OK);
      free(p);
    }
  }
}

/* max_depth 0 is the default (64); limits above the cap are the cap (1024). */
static void test_default_and_cap(void **state) {
  (void)state;
  static const struct {
    unsigned max_depth, effective;
  } cases[] = {{0, CRPC__PB_DEFAULT_MAX_DEPTH},
               {CRPC__PB_MAX_DEPTH_CAP + 1, CRPC__PB_MAX_DEPTH_CAP},
               {UINT_MAX, CRPC__PB_MAX_DEPTH_CAP}};
  assert_int_equal(CRPC__PB_DEFAULT_MAX_DEPTH, 64);
  assert_true(CRPC__PB_TOO_DEEP < 0 && CRPC__PB_MALFORMED < 0);
  assert_int_not_equal(CRPC__PB_TOO_DEEP, CRPC__PB_MALFORMED);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    uint8_t *p = chain(cases[i].effective, F_CHILD, &len);
    assert_int_equal(check(NODE, p, len, cases[i].max_depth), CRPC__PB_OK);
    free(p);
    p = chain(cases[i].effective + 1, F_CHILD, &len);
    assert_int_equal(check(NODE, p, len, cases[i].max_depth), CRPC__PB_TOO_DEEP);
    free(p);
  }
}

/* Refused as soon as the limit is crossed: bytes after that point are not read. */
static void test_too_deep_before_malformed(void **state) {
  (void)state;
  size_t len;
  uint8_t *p = chain(100, F_CHILD, &len);
  buf b = {0};
  put(&b, p, len);
  PUT_BYTES(&b, 0x0f); /* wire type 7 after the deep part */
  assert_int_equal(check(NODE, b.p, b.len, 64), CRPC__PB_TOO_DEEP);
  assert_int_equal(check(NODE, b.p, b.len, 100), CRPC__PB_MALFORMED);
  free(p);
  free(b.p);
}

/* ---- a million levels on a small stack --------------------------------------------------------*/

#define MILLION 1000000u
#define SMALL_THREAD_STACK (256 * 1024)

typedef struct deep_job {
  const ProtobufCMessageDescriptor *desc;
  const uint8_t *bytes;
  size_t len;
  unsigned max_depth;
  int rc;
  double seconds;
} deep_job;

static void *deep_job_run(void *arg) {
  deep_job *j = arg;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  j->rc = crpc__pb_depth_check(j->desc, j->bytes, j->len, j->max_depth);
  j->seconds = seconds_since(&t0);
  return NULL;
}

/* Runs the check on a thread whose whole stack is SMALL_THREAD_STACK; a walk that recursed per
 * level (as protobuf-c does) would overflow it long before a million levels. */
static int check_on_small_stack(const uint8_t *bytes, size_t len, unsigned max_depth,
                                double *seconds) {
  deep_job j = {NODE, bytes, len, max_depth, 1, 0};
  pthread_attr_t attr;
  pthread_t t;
  assert_int_equal(pthread_attr_init(&attr), 0);
  assert_int_equal(pthread_attr_setstacksize(&attr, SMALL_THREAD_STACK), 0);
  assert_int_equal(pthread_create(&t, &attr, deep_job_run, &j), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  pthread_attr_destroy(&attr);
  *seconds = j.seconds;
  return j.rc;
}

static void test_million_levels(void **state) {
  (void)state;
  static const uint32_t via_child[] = {F_CHILD}, via_kids[] = {F_KIDS},
                        via_map[] = {F_M, F_ENTRY_VALUE}, via_mixed[] = {F_CHILD, F_M,
                                                                         F_ENTRY_VALUE, F_KIDS};
  static const struct {
    const uint32_t *fields;
    size_t n;
  } shapes[] = {{via_child, 1}, {via_kids, 1}, {via_map, 2}, {via_mixed, 4}};
  static const unsigned limits[] = {0, 64, 1024, UINT_MAX};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    size_t len;
    uint8_t *p = chain_of(MILLION, shapes[s].fields, shapes[s].n, &len);
    assert_true(len > 2 * (size_t)MILLION);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
      double secs;
      assert_int_equal(check_on_small_stack(p, len, limits[i], &secs), CRPC__PB_TOO_DEEP);
      assert_true(secs < 1.0);
    }
    free(p);
  }
}

/* The same million levels under an unknown field number are skipped whole; and a few MB of flat
 * fields are walked in linear time on the small stack. */
static void test_million_levels_skipped(void **state) {
  (void)state;
  size_t len;
  double secs;
  uint8_t *inner = chain(MILLION, F_CHILD, &len);
  buf b = {0};
  put_ld(&b, 99, inner, len);
  put_ld(&b, F_NAME, inner, len); /* a known non-message field: skipped too */
  assert_int_equal(check_on_small_stack(b.p, b.len, 1, &secs), CRPC__PB_OK);
  free(inner);
  free(b.p);

  b = (buf){0};
  for (unsigned i = 0; i < MILLION; i++)
    PUT_BYTES(&b, 0x12, 0x02, 0x28, 0x01); /* kids { x: 1 } */
  assert_int_equal(check_on_small_stack(b.p, b.len, 2, &secs), CRPC__PB_OK);
  assert_true(secs < 5.0);
  assert_int_equal(check_on_small_stack(b.p, b.len, 1, &secs), CRPC__PB_TOO_DEEP);
  free(b.p);
}

/* ---- shapes ----------------------------------------------------------------------------------*/

/* Many siblings, shallow: 100000 kids, each with a child. */
static void test_wide_shallow(void **state) {
  (void)state;
  buf b = {0};
  for (int i = 0; i < 100000; i++)
    PUT_BYTES(&b, 0x12, 0x04, 0x0a, 0x02, 0x28, 0x07); /* kids { child { x: 7 } } */
  assert_int_equal(check(NODE, b.p, b.len, 3), CRPC__PB_OK);
  assert_int_equal(check(NODE, b.p, b.len, 2), CRPC__PB_TOO_DEEP);
  ProtobufCMessage *m = protobuf_c_message_unpack(NODE, NULL, b.len, b.p);
  assert_non_null(m);
  const Pbdepth__Node *n = (const Pbdepth__Node *)m;
  assert_int_equal(n->n_kids, 100000);
  assert_int_equal(n->kids[99999]->child->x, 7);
  assert_int_equal(node_depth(n), 3);
  protobuf_c_message_free_unpacked(m, NULL);
  free(b.p);
}

/* Thousands of chains exactly at the limit, one after the other: every push is popped again. */
static void test_sawtooth(void **state) {
  (void)state;
  size_t len;
  uint8_t *tooth = chain(63, F_CHILD, &len);
  buf b = {0};
  for (int i = 0; i < 2000; i++)
    put_ld(&b, F_KIDS, tooth, len);
  assert_int_equal(check(NODE, b.p, b.len, 64), CRPC__PB_OK);
  assert_int_equal(check(NODE, b.p, b.len, 63), CRPC__PB_TOO_DEEP);
  assert_int_equal(unpacked_depth(b.p, b.len), 64);
  free(tooth);
  free(b.p);
}

/* Unknown fields of every wire type are skipped, never entered, whatever their bytes look like. */
static void test_unknown_fields(void **state) {
  (void)state;
  size_t len;
  uint8_t *deep = chain(1000, F_CHILD, &len);
  buf b = {0};
  put_ld(&b, 99, deep, len);
  put_ld(&b, 536870911, deep, len); /* the largest field number */
  put_key(&b, 100, WT_VARINT);
  put_varint(&b, UINT64_MAX); /* ten bytes */
  put_key(&b, 101, WT_64);
  PUT_BYTES(&b, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a);
  put_key(&b, 102, WT_32);
  PUT_BYTES(&b, 0x0a, 0x02, 0x0a, 0x00);
  put_ld(&b, F_NAME, deep, len);
  assert_int_equal(check(NODE, b.p, b.len, 1), CRPC__PB_OK);
  ProtobufCMessage *m = protobuf_c_message_unpack(NODE, NULL, b.len, b.p);
  assert_non_null(m);
  assert_int_equal(m->n_unknown_fields, 5);
  assert_int_equal(node_depth((const Pbdepth__Node *)m), 1);
  protobuf_c_message_free_unpacked(m, NULL);
  free(deep);
  free(b.p);
}

/* A message field with a wire type other than length-delimited cannot nest: skipped (protobuf-c
 * rejects it for its own reasons). */
static void test_message_field_wrong_wire_type(void **state) {
  (void)state;
  static const uint8_t as_varint[] = {0x08, 0x0a}, as_fixed32[] = {0x0d, 0x0a, 0x02, 0x0a, 0x00},
                       as_fixed64[] = {0x11, 0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x00};
  assert_int_equal(check(NODE, as_varint, sizeof as_varint, 1), CRPC__PB_OK);
  assert_int_equal(check(NODE, as_fixed32, sizeof as_fixed32, 1), CRPC__PB_OK);
  assert_int_equal(check(NODE, as_fixed64, sizeof as_fixed64, 1), CRPC__PB_OK);
  assert_false(unpacks(NODE, as_varint, sizeof as_varint));
  assert_false(unpacks(NODE, as_fixed32, sizeof as_fixed32));
  assert_false(unpacks(NODE, as_fixed64, sizeof as_fixed64));
}

/* Map entries are message levels: Node > entry > Node > entry > Node is 5 deep. */
static void test_map_nesting(void **state) {
  (void)state;
  Pbdepth__Node leaf = PBDEPTH__NODE__INIT, mid = PBDEPTH__NODE__INIT, top = PBDEPTH__NODE__INIT;
  Pbdepth__Node__MEntry e1 = PBDEPTH__NODE__MENTRY__INIT, e2 = PBDEPTH__NODE__MENTRY__INIT;
  Pbdepth__Node__MEntry *top_m[] = {&e1}, *mid_m[] = {&e2};
  leaf.x = 3;
  e2.key = "b";
  e2.value = &leaf;
  mid.n_m = 1;
  mid.m = mid_m;
  e1.key = "a";
  e1.value = &mid;
  top.n_m = 1;
  top.m = top_m;
  size_t len;
  uint8_t *p = pack(&top.base, &len);
  assert_int_equal(check(NODE, p, len, 5), CRPC__PB_OK);
  assert_int_equal(check(NODE, p, len, 4), CRPC__PB_TOO_DEEP);
  assert_int_equal(unpacked_depth(p, len), 5);
  free(p);
}

/* Each sub-message is walked with its own descriptor: field 4 is a map in Node, a string in
 * Scalars, so bytes that would nest in a Node are skipped in a Scalars. */
static void test_descriptor_switch(void **state) {
  (void)state;
  static const uint32_t entry_first[] = {F_ENTRY_VALUE, F_M};
  size_t len;
  uint8_t *deep = chain_of(200, entry_first, 2, &len); /* as a map entry: value { m { ... */
  buf scalars = {0}, node = {0}, outer = {0};
  put_ld(&scalars, 4, deep, len);
  put_ld(&node, F_CHILD, NULL, 0);
  put_ld(&outer, 1, scalars.p, scalars.len);
  put_ld(&outer, 2, node.p, node.len);
  assert_int_equal(check(OUTER, outer.p, outer.len, 3), CRPC__PB_OK);
  assert_int_equal(check(OUTER, outer.p, outer.len, 2), CRPC__PB_TOO_DEEP);
  assert_int_equal(check(NODE, scalars.p, scalars.len, 64), CRPC__PB_TOO_DEEP);
  assert_int_equal(check(SCALARS, scalars.p, scalars.len, 1), CRPC__PB_OK);
  free(deep);
  free(scalars.p);
  free(node.p);
  free(outer.p);
}

/* ---- malformed input -------------------------------------------------------------------------*/

typedef struct bad_case {
  const char *what;
  uint8_t bytes[24];
  size_t len;
  int protobuf_c_accepts; /* protobuf-c 1.4 drops the high bits of an overlong key or varint */
} bad_case;

static const bad_case bad_cases[] = {
    {"truncated key", {0x80}, 1, 0},
    {"key of 11 bytes", {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 11, 0},
    {"key above 2^32-1", {0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, 6, 1},
    {"field number 0, varint", {0x00, 0x00}, 2, 0},
    {"field number 0, length-delimited", {0x02, 0x00}, 2, 0},
    {"truncated varint value", {0x28, 0x80}, 2, 0},
    {"varint value of 11 bytes",
     {0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 12, 0},
    {"varint value above 2^64-1",
     {0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 11, 1},
    {"fixed64 cut short", {0x29, 0x00, 0x00, 0x00}, 4, 0},
    {"fixed32 cut short", {0x2d, 0x00}, 2, 0},
    {"string past the end", {0x1a, 0x05, 0x61, 0x62}, 4, 0},
    {"sub-message past the end", {0x0a, 0x01}, 2, 0},
    {"truncated length", {0x0a, 0x80}, 2, 0},
    {"length 2^32-1", {0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}, 7, 0},
    {"length 2^63", {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 11, 0},
    {"length 2^64-1", {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11, 0},
    {"length past its enclosing message", /* child { name: 5 bytes, 1 there } x: 1 x: 1 */
     {0x0a, 0x03, 0x1a, 0x05, 0x61, 0x28, 0x01, 0x28, 0x01}, 9, 0},
    {"wire type 3 (start group)", {0x0b, 0x0c}, 2, 0},
    {"wire type 4 (end group)", {0x0c}, 1, 0},
    {"wire type 6", {0x0e, 0x00}, 2, 0},
    {"wire type 7", {0x0f, 0x00}, 2, 0},
    {"wire type 6, unknown field", {0xb6, 0x06, 0x00}, 3, 0},
    {"malformed inside a sub-message", {0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x0f}, 6, 0},
};

static void test_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    print_message("%s\n", c->what);
    assert_int_equal(check(NODE, c->bytes, c->len, 64), CRPC__PB_MALFORMED);
    assert_int_equal(unpacks(NODE, c->bytes, c->len), c->protobuf_c_accepts);
  }
}

/* A malformed innermost level of a deep but allowed chain. */
static void test_malformed_deep_inside(void **state) {
  (void)state;
  size_t len;
  uint8_t *deep = chain(50, F_CHILD, &len);
  buf b = {0};
  put(&b, deep, len);
  assert_true(b.len >= 2 && b.p[b.len - 2] == 0x0a && b.p[b.len - 1] == 0x00);
  b.p[b.len - 1] = 0x01; /* the innermost child now claims a byte past every end */
  assert_int_equal(check(NODE, b.p, b.len, 64), CRPC__PB_MALFORMED);
  free(deep);
  free(b.p);
}

/* A rich message cut at every length: each prefix is either walkable (0) or MALFORMED, and
 * protobuf-c agrees on which. */
static void test_truncations(void **state) {
  (void)state;
  Pbdepth__Node leaf = PBDEPTH__NODE__INIT, kid = PBDEPTH__NODE__INIT, top = PBDEPTH__NODE__INIT;
  Pbdepth__Node__MEntry e = PBDEPTH__NODE__MENTRY__INIT;
  Pbdepth__Node__MEntry *m[] = {&e};
  Pbdepth__Node *kids[] = {&kid, &leaf};
  leaf.name = "leaf";
  leaf.x = -300;
  kid.child = &leaf;
  kid.x = 1 << 20;
  e.key = "key";
  e.value = &kid;
  top.child = &kid;
  top.n_kids = 2;
  top.kids = kids;
  top.name = "top";
  top.n_m = 1;
  top.m = m;
  top.x = 5;
  size_t len;
  uint8_t *p = pack(&top.base, &len);
  assert_int_equal(check(NODE, p, len, 4), CRPC__PB_OK); /* top > m entry > kid > leaf */
  assert_int_equal(check(NODE, p, len, 3), CRPC__PB_TOO_DEEP);
  assert_int_equal(unpacked_depth(p, len), 4);
  int walkable = 0;
  for (size_t cut = 0; cut < len; cut++) {
    int rc = check(NODE, p, cut, 64);
    assert_true(rc == CRPC__PB_OK || rc == CRPC__PB_MALFORMED);
    assert_int_equal(rc == CRPC__PB_OK, unpacks(NODE, p, cut));
    walkable += rc == CRPC__PB_OK;
  }
  assert_int_equal(walkable, 6); /* the empty prefix and one after each of the first 5 fields */
  free(p);
}

/* ---- against protobuf-c on random trees ------------------------------------------------------*/

static Pbdepth__Node *random_tree(unsigned depth_left, unsigned *rng) {
  Pbdepth__Node *n = malloc(sizeof *n);
  assert_non_null(n);
  pbdepth__node__init(n);
  *rng = *rng * 1103515245u + 12345u;
  unsigned r = *rng >> 16;
  n->x = (int32_t)(r & 0xff);
  if (depth_left <= 1)
    return n;
  if (r & 0x100)
    n->child = random_tree(depth_left - 1, rng);
  n->n_kids = (r >> 9) % 3;
  n->kids = n->n_kids ? calloc(n->n_kids, sizeof *n->kids) : NULL;
  for (size_t i = 0; i < n->n_kids; i++)
    n->kids[i] = random_tree(depth_left - 1, rng);
  if (depth_left > 2 && (r & 0x800)) {
    n->n_m = 1;
    n->m = calloc(1, sizeof *n->m);
    n->m[0] = malloc(sizeof *n->m[0]);
    pbdepth__node__mentry__init(n->m[0]);
    n->m[0]->key = "k";
    n->m[0]->value = random_tree(depth_left - 2, rng);
  }
  return n;
}

static void tree_free(Pbdepth__Node *n) {
  if (n == NULL)
    return;
  tree_free(n->child);
  for (size_t i = 0; i < n->n_kids; i++)
    tree_free(n->kids[i]);
  free(n->kids);
  for (size_t i = 0; i < n->n_m; i++) {
    tree_free(n->m[i]->value);
    free(n->m[i]);
  }
  free(n->m);
  free(n);
}

/* Random trees: the check's verdict matches their true depth; with random bytes flipped, the
 * check never reads out of bounds, and whatever it passes protobuf-c unpacks no deeper. */
static void test_random_against_protobuf_c(void **state) {
  (void)state;
  unsigned rng = 12345;
  for (int round = 0; round < 300; round++) {
    Pbdepth__Node *t = random_tree(1 + (unsigned)round % 12, &rng);
    unsigned depth = node_depth(t);
    size_t len;
    uint8_t *p = pack(&t->base, &len);
    assert_int_equal(check(NODE, p, len, depth), CRPC__PB_OK);
    if (depth > 1)
      assert_int_equal(check(NODE, p, len, depth - 1), CRPC__PB_TOO_DEEP);
    assert_int_equal(unpacked_depth(p, len), depth);
    for (int flip = 0; flip < 20 && len > 0; flip++) {
      rng = rng * 1103515245u + 12345u;
      size_t at = (rng >> 8) % len;
      uint8_t old = p[at];
      p[at] = (uint8_t)(rng >> 24);
      unsigned max = 1 + (rng >> 4) % 12;
      int rc = check(NODE, p, len, max);
      assert_true(rc == CRPC__PB_OK || rc == CRPC__PB_TOO_DEEP || rc == CRPC__PB_MALFORMED);
      if (rc == CRPC__PB_OK)
        assert_true(unpacked_depth(p, len) <= max);
      p[at] = old;
    }
    free(p);
    tree_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_scalars_only),
      cmocka_unit_test(test_at_limit),
      cmocka_unit_test(test_default_and_cap),
      cmocka_unit_test(test_too_deep_before_malformed),
      cmocka_unit_test(test_million_levels),
      cmocka_unit_test(test_million_levels_skipped),
      cmocka_unit_test(test_wide_shallow),
      cmocka_unit_test(test_sawtooth),
      cmocka_unit_test(test_unknown_fields),
      cmocka_unit_test(test_message_field_wrong_wire_type),
      cmocka_unit_test(test_map_nesting),
      cmocka_unit_test(test_descriptor_switch),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_malformed_deep_inside),
      cmocka_unit_test(test_truncations),
      cmocka_unit_test(test_random_against_protobuf_c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
