/* Frame codec, payload level: every payload kind round-trips, and every malformed input is
 * refused with the documented error. Payloads under test live in exactly-sized heap blocks, so
 * AddressSanitizer reports any read past a declared length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/frame.h"

/* ---- helpers ---------------------------------------------------------------------------------*/

/* A frame over an exact-size heap copy of `len` bytes. */
static crpc__frame frame_of(uint8_t type, uint8_t flags, const uint8_t *bytes, size_t len) {
  crpc__frame f = {0};
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len)
    memcpy(copy, bytes, len);
  f.type = type;
  f.flags = flags;
  f.length = (uint32_t)len;
  f.payload = copy;
  return f;
}

static void frame_release(crpc__frame *f) {
  free((void *)f->payload);
  f->payload = NULL;
}

static uint8_t *md_build(size_t *len, int n, ...) {
  va_list ap;
  size_t total = 0;
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    const char *k = va_arg(ap, const char *);
    const char *v = va_arg(ap, const char *);
    total += crpc__md_entry_size(strlen(k), strlen(v));
  }
  va_end(ap);
  uint8_t *b = malloc(total ? total : 1), *p = b;
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    const char *k = va_arg(ap, const char *);
    const char *v = va_arg(ap, const char *);
    p = crpc__md_entry_encode(p, k, (uint16_t)strlen(k), (const uint8_t *)v, (uint32_t)strlen(v));
  }
  va_end(ap);
  assert_int_equal(p - b, total);
  *len = total;
  return b;
}

/* ---- preface and header ----------------------------------------------------------------------*/

static void test_preface(void **state) {
  (void)state;
  uint8_t p[CRPC__PREFACE_LEN], minor = 99;
  crpc__preface_encode(p);
  assert_memory_equal(p, "CRPC\r\n\x01\x00", 8);
  assert_int_equal(crpc__preface_decode(p, &minor), 0);
  assert_int_equal(minor, 0);
  p[7] = 9; /* a newer minor is fine */
  assert_int_equal(crpc__preface_decode(p, &minor), 0);
  assert_int_equal(minor, 9);
  p[6] = 2;
  assert_int_equal(crpc__preface_decode(p, &minor), CRPC__FR_VERSION);
  p[6] = 0;
  assert_int_equal(crpc__preface_decode(p, &minor), CRPC__FR_VERSION);
  for (int i = 0; i < 6; i++) {
    crpc__preface_encode(p);
    p[i] ^= 0x20;
    assert_int_equal(crpc__preface_decode(p, &minor), CRPC__FR_BADMAGIC);
  }
  assert_int_equal(crpc__preface_decode((const uint8_t *)"GET / HT", &minor), CRPC__FR_BADMAGIC);
}

static void test_header_roundtrip(void **state) {
  (void)state;
  static const uint32_t lens[] = {0, 1, 16383, 16384, 16385, 0x7fffffffu, 0x80000000u,
                                  0xffffffffu};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t h[CRPC__HDR_LEN];
    crpc__frame f;
    crpc__hdr_encode(h, 0xAB, 0xCD, 0xfffffffeu, lens[i]);
    assert_int_equal(crpc__be32_get(h), lens[i]);
    assert_int_equal(crpc__hdr_decode(h, &f), 0);
    assert_int_equal(f.length, lens[i]);
    assert_int_equal(f.type, 0xAB);
    assert_int_equal(f.flags, 0xCD);
    assert_int_equal(f.call_id, 0xfffffffeu);
    assert_null(f.payload);
    assert_int_equal(f.oversized, 0);
  }
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, CRPC__F_CALL, 3, 1, 44);
  assert_memory_equal(h, "\x00\x00\x00\x2c\x01\x03\x00\x00\x00\x00\x00\x01", 12);
}

static void test_header_reserved(void **state) {
  (void)state;
  for (int byte = 6; byte <= 7; byte++)
    for (int bit = 0; bit < 8; bit++) {
      uint8_t h[CRPC__HDR_LEN];
      crpc__frame f;
      crpc__hdr_encode(h, CRPC__F_PING, 0, 0, 8);
      h[byte] = (uint8_t)(1u << bit);
      assert_int_equal(crpc__hdr_decode(h, &f), CRPC__FR_PROTO);
    }
}

static void test_be_helpers(void **state) {
  (void)state;
  uint8_t b[4];
  crpc__be16_put(b, 0xBEEF);
  assert_memory_equal(b, "\xbe\xef", 2);
  assert_int_equal(crpc__be16_get(b), 0xBEEF);
  crpc__be32_put(b, 0xDEADBEEFu);
  assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
  assert_int_equal(crpc__be32_get(b), 0xDEADBEEFu);
}

/* ---- CALL ------------------------------------------------------------------------------------*/

static uint8_t *call_build(size_t *len, const char *method, uint32_t timeout, const uint8_t *md,
                           size_t md_len, const uint8_t *msg, size_t msg_len) {
  size_t fixed = crpc__call_fixed_size(strlen(method), md_len);
  uint8_t *b = malloc(fixed + msg_len + 1);
  uint8_t *p = crpc__call_fixed_encode(b, method, (uint16_t)strlen(method), timeout, md,
                                       (uint32_t)md_len);
  assert_int_equal(p - b, fixed);
  if (msg_len)
    memcpy(p, msg, msg_len);
  *len = fixed + msg_len;
  return b;
}

static void test_call_roundtrip(void **state) {
  (void)state;
  size_t md_len, len;
  uint8_t *md = md_build(&md_len, 3, "x-trace", "abc 123", "k-bin", "\x01\x02", "a.b_c-d", "");
  static const uint8_t msg[] = {0x0a, 0x05, 'w', 'o', 'r', 'l', 'd'};
  uint8_t *b = call_build(&len, "pkg.Svc/M", 1500, md, md_len, msg, sizeof msg);
  crpc__frame f = frame_of(CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, b, len);
  crpc__call_hdr c;
  assert_int_equal(crpc__call_decode(&f, &c), 0);
  assert_int_equal(c.method_len, 9);
  assert_memory_equal(c.method, "pkg.Svc/M", 9);
  assert_int_equal(c.timeout_ms, 1500);
  assert_int_equal(c.metadata_len, md_len);
  assert_memory_equal(c.metadata, md, md_len);
  assert_int_equal(c.message_len, sizeof msg);
  assert_memory_equal(c.message, msg, sizeof msg);
  /* The decoder points into the payload; nothing is copied. */
  assert_ptr_equal(c.method, f.payload + 2);

  crpc__md_entry e;
  uint32_t pos = 0;
  assert_int_equal(crpc__md_next(c.metadata, c.metadata_len, &pos, &e), 1);
  assert_int_equal(e.key_len, 7);
  assert_memory_equal(e.key, "x-trace", 7);
  assert_int_equal(e.value_len, 7);
  assert_int_equal(crpc__md_next(c.metadata, c.metadata_len, &pos, &e), 1);
  assert_memory_equal(e.value, "\x01\x02", 2);
  assert_int_equal(crpc__md_next(c.metadata, c.metadata_len, &pos, &e), 1);
  assert_int_equal(e.value_len, 0);
  assert_int_equal(crpc__md_next(c.metadata, c.metadata_len, &pos, &e), 0);
  assert_int_equal(pos, md_len);
  frame_release(&f);
  free(b);
  free(md);
}

static void test_call_message_flag(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = call_build(&len, "S/M", 0, NULL, 0, NULL, 0);
  crpc__call_hdr c;
  /* Flag set, zero bytes: an empty protobuf message, not "no message". */
  crpc__frame f = frame_of(CRPC__F_CALL, CRPC__FL_MESSAGE, b, len);
  assert_int_equal(crpc__call_decode(&f, &c), 0);
  assert_non_null(c.message);
  assert_int_equal(c.message_len, 0);
  frame_release(&f);
  /* Flag clear, nothing after the metadata: no message. */
  f = frame_of(CRPC__F_CALL, 0, b, len);
  assert_int_equal(crpc__call_decode(&f, &c), 0);
  assert_null(c.message);
  assert_int_equal(c.message_len, 0);
  assert_int_equal(c.timeout_ms, 0);
  frame_release(&f);
  free(b);
  /* Flag clear but bytes follow: the peers disagree about the layout. */
  b = call_build(&len, "S/M", 0, NULL, 0, (const uint8_t *)"x", 1);
  f = frame_of(CRPC__F_CALL, 0, b, len);
  assert_int_equal(crpc__call_decode(&f, &c), CRPC__FR_PROTO);
  frame_release(&f);
  free(b);
}

static void test_call_method_len(void **state) {
  (void)state;
  char name[CRPC__MAX_METHOD_LEN + 2];
  memset(name, 'm', sizeof name);
  crpc__call_hdr c;
  static const size_t ok[] = {1, 2, CRPC__MAX_METHOD_LEN - 1, CRPC__MAX_METHOD_LEN};
  for (size_t i = 0; i < 4; i++) {
    name[ok[i]] = '\0';
    size_t len;
    uint8_t *b = call_build(&len, name, 7, NULL, 0, NULL, 0);
    crpc__frame f = frame_of(CRPC__F_CALL, 0, b, len);
    assert_int_equal(crpc__call_decode(&f, &c), 0);
    assert_int_equal(c.method_len, ok[i]);
    frame_release(&f);
    free(b);
    name[ok[i]] = 'm';
  }
  static const size_t bad[] = {0, CRPC__MAX_METHOD_LEN + 1};
  for (size_t i = 0; i < 2; i++) {
    name[bad[i]] = '\0';
    size_t len;
    uint8_t *b = call_build(&len, name, 7, NULL, 0, NULL, 0);
    crpc__frame f = frame_of(CRPC__F_CALL, 0, b, len);
    assert_int_equal(crpc__call_decode(&f, &c), CRPC__FR_PROTO);
    frame_release(&f);
    free(b);
    name[bad[i]] = 'm';
  }
}

/* Every strict prefix of a valid payload is malformed (no field may be cut short). */
static void check_truncations(uint8_t type, uint8_t flags, const uint8_t *b, size_t len,
                              int (*decode)(const crpc__frame *)) {
  for (size_t n = 0; n < len; n++) {
    crpc__frame f = frame_of(type, flags, b, n);
    assert_int_equal(decode(&f), CRPC__FR_PROTO);
    frame_release(&f);
  }
  crpc__frame f = frame_of(type, flags, b, len);
  assert_int_equal(decode(&f), 0);
  frame_release(&f);
}

static int call_dec(const crpc__frame *f) {
  crpc__call_hdr c;
  return crpc__call_decode(f, &c);
}
static int status_dec(const crpc__frame *f) {
  crpc__status_hdr s;
  return crpc__status_decode(f, &s);
}
static int goaway_dec(const crpc__frame *f) {
  crpc__goaway g;
  return crpc__goaway_decode(f, &g);
}
static int window_dec(const crpc__frame *f) {
  uint32_t inc;
  return crpc__window_decode(f, &inc);
}

static void test_call_truncated(void **state) {
  (void)state;
  size_t md_len, len;
  uint8_t *md = md_build(&md_len, 1, "k", "v");
  uint8_t *b = call_build(&len, "a/b", 5, md, md_len, NULL, 0);
  check_truncations(CRPC__F_CALL, 0, b, len, call_dec);
  free(b);
  free(md);
}

/* Sets the u32 at `off` to each overrunning value: one past the end, 2^31, 2^32-1. */
static void check_overruns32(uint8_t type, uint8_t flags, uint8_t *b, size_t len, size_t off,
                             int (*decode)(const crpc__frame *)) {
  uint32_t orig = crpc__be32_get(b + off);
  size_t room = len - off - 4; /* bytes after the length field */
  const uint32_t vals[] = {(uint32_t)room + 1, 0x80000000u, 0xffffffffu};
  for (size_t i = 0; i < 3; i++) {
    crpc__be32_put(b + off, vals[i]);
    crpc__frame f = frame_of(type, flags & (uint8_t)~CRPC__FL_MESSAGE, b, len);
    assert_int_equal(decode(&f), CRPC__FR_PROTO);
    frame_release(&f);
    f = frame_of(type, flags | CRPC__FL_MESSAGE, b, len);
    assert_int_equal(decode(&f), CRPC__FR_PROTO);
    frame_release(&f);
  }
  crpc__be32_put(b + off, orig);
}

static void test_call_overruns(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = call_build(&len, "a/b", 5, NULL, 0, NULL, 0);
  /* method_len past the end (still <= MAX_METHOD_LEN), and the metadata length. */
  crpc__be16_put(b, (uint16_t)(len - 2 + 1));
  crpc__frame f = frame_of(CRPC__F_CALL, 0, b, len);
  assert_int_equal(crpc__call_decode(&f, &(crpc__call_hdr){0}), CRPC__FR_PROTO);
  frame_release(&f);
  crpc__be16_put(b, 3);
  check_overruns32(CRPC__F_CALL, 0, b, len, 2 + 3 + 4, call_dec);
  free(b);
}

static void test_call_oversized_frame(void **state) {
  (void)state;
  /* A frame delivered header-only cannot be parsed. */
  crpc__frame f = {.length = 100, .type = CRPC__F_CALL, .oversized = 1};
  crpc__call_hdr c;
  crpc__status_hdr s;
  assert_int_equal(crpc__call_decode(&f, &c), CRPC__FR_PROTO);
  f.type = CRPC__F_STATUS;
  assert_int_equal(crpc__status_decode(&f, &s), CRPC__FR_PROTO);
}

/* ---- metadata --------------------------------------------------------------------------------*/

static int md_walk(const uint8_t *b, size_t len) {
  uint32_t pos = 0;
  crpc__md_entry e;
  int rc;
  while ((rc = crpc__md_next(b, (uint32_t)len, &pos, &e)) == 1)
    ;
  return rc;
}

static int md_one(const char *key, size_t klen, const uint8_t *val, size_t vlen) {
  size_t n = crpc__md_entry_size(klen, vlen);
  uint8_t *b = malloc(n);
  assert_ptr_equal(crpc__md_entry_encode(b, key, (uint16_t)klen, val, (uint32_t)vlen), b + n);
  int rc = md_walk(b, n);
  free(b);
  return rc;
}

static void test_md_keys(void **state) {
  (void)state;
  char key[300];
  memset(key, 'k', sizeof key);
  assert_int_equal(md_one(key, 1, (const uint8_t *)"v", 1), 0);
  assert_int_equal(md_one(key, 255, (const uint8_t *)"v", 1), 0);
  assert_int_equal(md_one(key, 0, (const uint8_t *)"v", 1), CRPC__FR_PROTO);
  assert_int_equal(md_one(key, 256, (const uint8_t *)"v", 1), CRPC__FR_PROTO);
  assert_int_equal(md_one("az09_.-", 7, (const uint8_t *)"v", 1), 0);
  static const char bad[] = "AZ :/\t\x80\x7f@+";
  for (size_t i = 0; i < sizeof bad - 1; i++) {
    char k[3] = {'a', bad[i], 'b'};
    assert_int_equal(md_one(k, 3, (const uint8_t *)"v", 1), CRPC__FR_PROTO);
  }
}

static void test_md_values(void **state) {
  (void)state;
  uint8_t all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (uint8_t)i;
  /* Binary keys take any byte; text keys only 0x20..0x7E. */
  assert_int_equal(md_one("x-bin", 5, all, 256), 0);
  assert_int_equal(md_one("-bin", 4, all, 256), 0);
  assert_int_equal(md_one("x", 1, all + 0x20, 0x7f - 0x20), 0);
  assert_int_equal(md_one("x", 1, all, 0), 0);
  static const uint8_t bad[] = {0x00, 0x09, 0x0a, 0x1f, 0x7f, 0x80, 0xff};
  for (size_t i = 0; i < sizeof bad; i++) {
    assert_int_equal(md_one("x", 1, &bad[i], 1), CRPC__FR_PROTO);
    assert_int_equal(md_one("x-bim", 5, &bad[i], 1), CRPC__FR_PROTO);
    assert_int_equal(md_one("xbin", 4, &bad[i], 1), CRPC__FR_PROTO);
    assert_int_equal(md_one("x-bin", 5, &bad[i], 1), 0);
  }
}

static void test_md_truncated(void **state) {
  (void)state;
  size_t len;
  uint8_t *b = md_build(&len, 2, "ab", "cd", "ef", "gh");
  /* Any cut other than between entries is malformed. */
  size_t first = crpc__md_entry_size(2, 2);
  for (size_t n = 0; n <= len; n++) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    int rc = md_walk(c, n);
    assert_int_equal(rc, (n == 0 || n == first || n == len) ? 0 : CRPC__FR_PROTO);
    free(c);
  }
  /* The value length overrunning, and a position past the end. */
  const uint32_t vals[] = {3, 0x80000000u, 0xffffffffu};
  for (int i = 0; i < 3; i++) {
    crpc__be32_put(b + 4, vals[i]);
    assert_int_equal(md_walk(b, first), CRPC__FR_PROTO);
  }
  uint32_t pos = (uint32_t)len + 1;
  crpc__md_entry e;
  assert_int_equal(crpc__md_next(b, (uint32_t)len, &pos, &e), CRPC__FR_PROTO);
  free(b);
}

static void test_md_bad_in_frames(void **state) {
  (void)state;
  size_t md_len, len;
  uint8_t *md = md_build(&md_len, 1, "Bad", "v");
  uint8_t *b = call_build(&len, "a/b", 0, md, md_len, NULL, 0);
  crpc__frame f = frame_of(CRPC__F_CALL, 0, b, len);
  assert_int_equal(call_dec(&f), CRPC__FR_PROTO);
  frame_release(&f);
  free(b);
  free(md);
  md = md_build(&md_len, 1, "ok", "tab\there");
  size_t n = crpc__status_fixed_size(0, md_len, 0);
  b = malloc(n);
  crpc__status_fixed_encode(b, 0, NULL, 0, md, (uint32_t)md_len, NULL, 0);
  f = frame_of(CRPC__F_STATUS, 0, b, n);
  assert_int_equal(status_dec(&f), CRPC__FR_PROTO);
  frame_release(&f);
  free(b);
  free(md);
}

/* ---- STATUS ----------------------------------------------------------------------------------*/

static uint8_t *status_build(size_t *len, uint32_t code, const char *text, const uint8_t *md,
                             size_t md_len, const char *det, size_t det_len, const uint8_t *msg,
                             size_t msg_len) {
  size_t fixed = crpc__status_fixed_size(strlen(text), md_len, det_len);
  uint8_t *b = malloc(fixed + msg_len + 1);
  uint8_t *p = crpc__status_fixed_encode(b, code, text, (uint32_t)strlen(text), md,
                                         (uint32_t)md_len, (const uint8_t *)det,
                                         (uint32_t)det_len);
  assert_int_equal(p - b, fixed);
  if (msg_len)
    memcpy(p, msg, msg_len);
  *len = fixed + msg_len;
  return b;
}

static void test_status_roundtrip(void **state) {
  (void)state;
  size_t md_len, len;
  uint8_t *md = md_build(&md_len, 1, "retry-after", "5");
  uint8_t *b = status_build(&len, 0xfffffff0u, "boom", md, md_len, "\x08\x01", 2,
                            (const uint8_t *)"\x0a\x00", 2);
  crpc__frame f = frame_of(CRPC__F_STATUS, CRPC__FL_MESSAGE, b, len);
  crpc__status_hdr s;
  assert_int_equal(crpc__status_decode(&f, &s), 0);
  assert_int_equal(s.code, 0xfffffff0u);
  assert_int_equal(s.text_len, 4);
  assert_memory_equal(s.text, "boom", 4);
  assert_int_equal(s.metadata_len, md_len);
  assert_memory_equal(s.metadata, md, md_len);
  assert_int_equal(s.details_len, 2);
  assert_memory_equal(s.details, "\x08\x01", 2);
  assert_int_equal(s.message_len, 2);
  assert_memory_equal(s.message, "\x0a\x00", 2);
  frame_release(&f);
  /* Without the flag the trailing message bytes are stray. */
  f = frame_of(CRPC__F_STATUS, 0, b, len);
  assert_int_equal(crpc__status_decode(&f, &s), CRPC__FR_PROTO);
  frame_release(&f);
  f = frame_of(CRPC__F_STATUS, 0, b, len - 2);
  assert_int_equal(crpc__status_decode(&f, &s), 0);
  assert_null(s.message);
  frame_release(&f);
  free(b);
  free(md);
}

static void test_status_bad(void **state) {
  (void)state;
  size_t len, md_len;
  uint8_t *md = md_build(&md_len, 1, "k", "v");
  uint8_t *b = status_build(&len, 5, "txt", md, md_len, "dd", 2, NULL, 0);
  check_truncations(CRPC__F_STATUS, 0, b, len, status_dec);
  size_t text_off = 4, md_off = 8 + 3, det_off = md_off + 4 + md_len;
  check_overruns32(CRPC__F_STATUS, 0, b, len, text_off, status_dec);
  check_overruns32(CRPC__F_STATUS, 0, b, len, md_off, status_dec);
  check_overruns32(CRPC__F_STATUS, 0, b, len, det_off, status_dec);
  free(b);
  free(md);
}

static void test_fixed_sizes_saturate(void **state) {
  (void)state;
  /* Absurd sizes must not wrap into small ones that a limit check would accept. */
  assert_int_equal(crpc__call_fixed_size(SIZE_MAX, 1), SIZE_MAX);
  assert_int_equal(crpc__call_fixed_size(1, SIZE_MAX - 5), SIZE_MAX);
  assert_int_equal(crpc__status_fixed_size(SIZE_MAX - 3, 0, 0), SIZE_MAX);
  assert_int_equal(crpc__status_fixed_size(1, SIZE_MAX / 2, SIZE_MAX / 2), SIZE_MAX);
  assert_int_equal(crpc__goaway_size(SIZE_MAX - 1), SIZE_MAX);
  assert_int_equal(crpc__md_entry_size(SIZE_MAX, SIZE_MAX), SIZE_MAX);
  assert_int_equal(crpc__call_fixed_size(3, 0), 13);
  assert_int_equal(crpc__status_fixed_size(0, 0, 0), 16);
  assert_int_equal(crpc__goaway_size(0), 12);
  assert_int_equal(crpc__md_entry_size(1, 0), 7);
}

/* ---- GOAWAY, WINDOW --------------------------------------------------------------------------*/

static void test_goaway(void **state) {
  (void)state;
  uint8_t b[64];
  size_t n = crpc__goaway_size(5);
  assert_ptr_equal(crpc__goaway_encode(b, 41, CRPC__GOAWAY_PROTOCOL_ERROR, "oops!", 5), b + n);
  crpc__frame f = frame_of(CRPC__F_GOAWAY, 0, b, n);
  crpc__goaway g;
  assert_int_equal(crpc__goaway_decode(&f, &g), 0);
  assert_int_equal(g.last_call_id, 41);
  assert_int_equal(g.code, CRPC__GOAWAY_PROTOCOL_ERROR);
  assert_int_equal(g.text_len, 5);
  assert_memory_equal(g.text, "oops!", 5);
  frame_release(&f);
  check_truncations(CRPC__F_GOAWAY, 0, b, n, goaway_dec);
  check_overruns32(CRPC__F_GOAWAY, 0, b, n, 8, goaway_dec);
  /* Trailing junk. */
  f = frame_of(CRPC__F_GOAWAY, 0, b, n + 1);
  assert_int_equal(crpc__goaway_decode(&f, &g), CRPC__FR_PROTO);
  frame_release(&f);
  n = crpc__goaway_size(0);
  crpc__goaway_encode(b, 0, 0, NULL, 0);
  f = frame_of(CRPC__F_GOAWAY, 0, b, n);
  assert_int_equal(crpc__goaway_decode(&f, &g), 0);
  assert_int_equal(g.text_len, 0);
  frame_release(&f);
}

static void test_window(void **state) {
  (void)state;
  uint8_t b[5];
  uint32_t inc = 0;
  static const uint32_t ok[] = {1, 65535, 0x80000000u, 0xffffffffu};
  for (int i = 0; i < 4; i++) {
    crpc__be32_put(b, ok[i]);
    crpc__frame f = frame_of(CRPC__F_WINDOW, 0, b, 4);
    assert_int_equal(crpc__window_decode(&f, &inc), 0);
    assert_int_equal(inc, ok[i]);
    frame_release(&f);
  }
  crpc__be32_put(b, 0);
  crpc__frame f = frame_of(CRPC__F_WINDOW, 0, b, 4);
  assert_int_equal(crpc__window_decode(&f, &inc), CRPC__FR_PROTO);
  frame_release(&f);
  crpc__be32_put(b, 1);
  check_truncations(CRPC__F_WINDOW, 0, b, 4, window_dec);
  for (size_t n = 0; n <= 5; n++) {
    if (n == 4)
      continue;
    f = frame_of(CRPC__F_WINDOW, 0, b, n);
    assert_int_equal(crpc__window_decode(&f, &inc), CRPC__FR_PROTO);
    frame_release(&f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_preface),
      cmocka_unit_test(test_header_roundtrip),
      cmocka_unit_test(test_header_reserved),
      cmocka_unit_test(test_be_helpers),
      cmocka_unit_test(test_call_roundtrip),
      cmocka_unit_test(test_call_message_flag),
      cmocka_unit_test(test_call_method_len),
      cmocka_unit_test(test_call_truncated),
      cmocka_unit_test(test_call_overruns),
      cmocka_unit_test(test_call_oversized_frame),
      cmocka_unit_test(test_md_keys),
      cmocka_unit_test(test_md_values),
      cmocka_unit_test(test_md_truncated),
      cmocka_unit_test(test_md_bad_in_frames),
      cmocka_unit_test(test_status_roundtrip),
      cmocka_unit_test(test_status_bad),
      cmocka_unit_test(test_fixed_sizes_saturate),
      cmocka_unit_test(test_goaway),
      cmocka_unit_test(test_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
