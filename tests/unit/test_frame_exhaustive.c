/* Frame codec under systematic corruption: every 1- and 2-bit flip of several valid frames, and
 * every numeric field at its edge values (0, 1, max-1, max, max+1, 2^31, 2^32-1 where the field
 * can hold them). Whatever the bytes, the streaming decoder and the payload decoders must give a
 * valid frame or a specific error (CRPC__FR_PROTO; "incomplete" for a frame that claims more bytes
 * than exist), never undefined behaviour: CI runs this under ASan+UBSan, and tests/fuzz builds it
 * once more with clang's -fsanitize=unsigned-integer-overflow,implicit-conversion
 * (unit_frame_exhaustive_intsan), so this file does its own arithmetic in 64 bits and casts
 * explicitly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/frame.h"

#define MAXP 4096u /* max_payload of the decoders here */
#define BIG 2048   /* room for the largest frame built here */

/* ---- building frames -------------------------------------------------------------------------*/

typedef struct buf {
  uint8_t b[BIG];
  size_t len;
} buf;

static void put(buf *w, const void *p, size_t n) {
  assert_true(w->len + n <= BIG);
  if (n)
    memcpy(w->b + w->len, p, n);
  w->len += n;
}
static void put8(buf *w, uint8_t v) { put(w, &v, 1); }
static void put16(buf *w, uint16_t v) {
  uint8_t t[2];
  crpc__be16_put(t, v);
  put(w, t, 2);
}
static void put32(buf *w, uint32_t v) {
  uint8_t t[4];
  crpc__be32_put(t, v);
  put(w, t, 4);
}
static void fill(buf *w, uint8_t c, size_t n) {
  for (size_t i = 0; i < n; i++)
    put8(w, c);
}

/* A header for the payload p, its length field as given. */
static void frame(buf *out, uint8_t type, uint8_t flags, uint32_t id, uint32_t length,
                  const buf *p) {
  out->len = 0;
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, type, flags, id, length);
  put(out, h, sizeof h);
  put(out, p->b, p->len);
}

/* One metadata entry "k" = "v". */
static void md_kv(buf *w) {
  put16(w, 1);
  put8(w, 'k');
  put32(w, 1);
  put8(w, 'v');
}

static void call_payload(buf *p) {
  p->len = 0;
  put16(p, 3);
  put(p, "s/m", 3);
  put32(p, 1000);
  put32(p, 8);
  md_kv(p);
  put(p, "\x08\x01", 2); /* message */
}

static void status_payload(buf *p) {
  p->len = 0;
  put32(p, 5);
  put32(p, 2);
  put(p, "no", 2);
  put32(p, 8);
  md_kv(p);
  put32(p, 1);
  put8(p, 'd');
  put(p, "\x08\x01", 2); /* message */
}

static void goaway_payload(buf *p) {
  p->len = 0;
  put32(p, 7);
  put32(p, 1);
  put32(p, 2);
  put(p, "by", 2);
}

/* ---- decoding, with the outcome classified ---------------------------------------------------*/

enum { MAXF = 8 };

typedef struct outcome {
  int rc;          /* decoder result: 0 or a negative crpc__fresult */
  int n;           /* frames delivered */
  crpc__frame f[MAXF];
  int payload_rc[MAXF]; /* the type's payload decoder on each delivered frame */
  size_t pending;  /* bytes left in the decoder (an incomplete frame) */
} outcome;

static int payload_check(const crpc__frame *f) {
  if (f->oversized)
    return 0;
  /* Every decoder on every frame must be safe; the frame's own type decides the result. */
  crpc__call_hdr c;
  crpc__status_hdr s;
  crpc__goaway g;
  uint32_t inc;
  int rc_call = crpc__call_decode(f, &c);
  int rc_status = crpc__status_decode(f, &s);
  int rc_goaway = crpc__goaway_decode(f, &g);
  int rc_window = crpc__window_decode(f, &inc);
  int rcs[4] = {rc_call, rc_status, rc_goaway, rc_window};
  for (int i = 0; i < 4; i++)
    assert_true(rcs[i] == CRPC__FR_OK || rcs[i] == CRPC__FR_PROTO);
  if (rc_call == 0) {
    assert_true(c.method_len >= 1 && c.method_len <= CRPC__MAX_METHOD_LEN);
    uint64_t used = 10u + (uint64_t)c.method_len + c.metadata_len + c.message_len;
    assert_true(used == f->length);
  }
  if (rc_status == 0) {
    uint64_t used = 16u + (uint64_t)s.text_len + s.metadata_len + s.details_len + s.message_len;
    assert_true(used == f->length);
  }
  if (rc_goaway == 0)
    assert_true(12u + (uint64_t)g.text_len == f->length);
  if (rc_window == 0)
    assert_true(inc > 0 && f->length == 4);
  switch (f->type) {
  case CRPC__F_CALL:
    return rc_call;
  case CRPC__F_STATUS:
    return rc_status;
  case CRPC__F_GOAWAY:
    return rc_goaway;
  case CRPC__F_WINDOW:
    return rc_window;
  default:
    return 0;
  }
}

static int on_frame(void *ud, const crpc__frame *f) {
  outcome *o = ud;
  assert_true(o->n < MAXF);
  if (f->oversized)
    assert_null(f->payload);
  else
    assert_true(f->length == 0 || f->payload != NULL);
  o->f[o->n] = *f;
  o->f[o->n].payload = NULL; /* valid during the callback only */
  o->payload_rc[o->n] = payload_check(f);
  o->n++;
  return 0;
}

/* Feeds b whole (an exact-size heap copy, so ASan sees any over-read). */
static outcome decode(const uint8_t *b, size_t len, uint32_t max_payload) {
  outcome o;
  memset(&o, 0, sizeof o);
  crpc__decoder d;
  crpc__decoder_init(&d, max_payload, 0);
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, b, len);
  o.rc = crpc__decoder_feed(&d, copy, len, on_frame, &o);
  free(copy);
  assert_true(o.rc == 0 || o.rc == CRPC__FR_PROTO);
  o.pending = d.len;
  assert_true(d.cap <= 64 || d.cap <= (size_t)CRPC__HDR_LEN + MAXP);
  crpc__decoder_free(&d);
  return o;
}

/* ---- bit flips -------------------------------------------------------------------------------*/

static uint32_t limit_of(uint8_t type) {
  return type == CRPC__F_CALL || type == CRPC__F_MESSAGE || type == CRPC__F_STATUS
             ? MAXP
             : CRPC__MAX_CONTROL_PAYLOAD;
}

/* What one flipped bit must do; `orig` is the valid frame, bit counted from byte 0's MSB. */
static void check_one_flip(const buf *orig, const buf *flipped, size_t bit, const outcome *ref) {
  outcome o = decode(flipped->b, flipped->len, MAXP);
  size_t byte = bit / 8;
  if (byte == 6 || byte == 7) { /* reserved: always refused, nothing delivered */
    assert_int_equal(o.rc, CRPC__FR_PROTO);
    assert_int_equal(o.n, 0);
    return;
  }
  if (byte < 4) { /* length */
    uint32_t want = crpc__be32_get(flipped->b);
    uint32_t have = (uint32_t)(orig->len - CRPC__HDR_LEN);
    uint8_t type = flipped->b[4];
    if (want > limit_of(type)) {
      if (limit_of(type) == CRPC__MAX_CONTROL_PAYLOAD) {
        assert_int_equal(o.rc, CRPC__FR_PROTO);
        assert_int_equal(o.n, 0);
      } else {
        assert_int_equal(o.rc, 0);
        assert_int_equal(o.n, 1);
        assert_true(o.f[0].oversized);
        assert_int_equal(o.f[0].length, want);
      }
    } else if (want > have) { /* incomplete: kept, nothing delivered */
      assert_int_equal(o.rc, 0);
      assert_int_equal(o.n, 0);
      assert_int_equal(o.pending, orig->len);
    } else { /* shorter: the first frame ends early; the rest is whatever it parses as */
      assert_true(o.n >= 1);
      assert_int_equal(o.f[0].length, want);
      assert_false(o.f[0].oversized);
    }
    return;
  }
  /* type, flags, call id or payload: the header stays valid, one frame of the same length. */
  assert_int_equal(o.rc, 0);
  assert_int_equal(o.n, 1);
  assert_int_equal(o.pending, 0);
  assert_int_equal(o.f[0].length, ref->f[0].length);
  assert_int_equal(o.f[0].type, flipped->b[4]);
  assert_int_equal(o.f[0].flags, flipped->b[5]);
  assert_int_equal(o.f[0].call_id, crpc__be32_get(flipped->b + 8));
  if (byte >= 8 && byte < CRPC__HDR_LEN) /* call id: the payload means the same */
    assert_int_equal(o.payload_rc[0], ref->payload_rc[0]);
}

static void flip_all(const buf *orig) {
  outcome ref = decode(orig->b, orig->len, MAXP);
  assert_int_equal(ref.rc, 0);
  assert_int_equal(ref.n, 1);
  assert_int_equal(ref.payload_rc[0], 0);
  size_t bits = orig->len * 8;
  buf w;
  for (size_t i = 0; i < bits; i++) {
    w = *orig;
    w.b[i / 8] ^= (uint8_t)(0x80u >> (i % 8));
    check_one_flip(orig, &w, i, &ref);
    for (size_t j = i + 1; j < bits; j++) {
      w.b[j / 8] ^= (uint8_t)(0x80u >> (j % 8));
      outcome o = decode(w.b, w.len, MAXP);
      (void)o; /* any frame or error will do: decode() checked the invariants */
      w.b[j / 8] ^= (uint8_t)(0x80u >> (j % 8));
    }
  }
}

static void flips_call(void **state) {
  (void)state;
  buf p, f;
  call_payload(&p);
  frame(&f, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, 1, (uint32_t)p.len, &p);
  flip_all(&f);
}

static void flips_status(void **state) {
  (void)state;
  buf p, f;
  status_payload(&p);
  frame(&f, CRPC__F_STATUS, CRPC__FL_MESSAGE, 1, (uint32_t)p.len, &p);
  flip_all(&f);
}

static void flips_goaway(void **state) {
  (void)state;
  buf p, f;
  goaway_payload(&p);
  frame(&f, CRPC__F_GOAWAY, 0, 0, (uint32_t)p.len, &p);
  flip_all(&f);
}

static void flips_control(void **state) {
  (void)state;
  buf p = {.len = 0}, f;
  put(&p, "12345678", 8);
  frame(&f, CRPC__F_PING, 0, 0, 8, &p);
  flip_all(&f);
  p.len = 0;
  put32(&p, 100);
  frame(&f, CRPC__F_WINDOW, 0, 3, 4, &p);
  flip_all(&f);
  p.len = 0;
  frame(&f, CRPC__F_CANCEL, 0, 3, 0, &p);
  flip_all(&f);
}

/* ---- numeric fields at their edges -----------------------------------------------------------*/

static const uint64_t u32_edges[] = {0, 1, 2, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu};

/* The header's length field against limits: MAXP for CALL/STATUS/MESSAGE, 16384 for the rest. */
static void header_length(void **state) {
  (void)state;
  const uint8_t types[] = {CRPC__F_CALL, CRPC__F_MESSAGE, CRPC__F_STATUS, CRPC__F_PING,
                           CRPC__F_GOAWAY, CRPC__F_CANCEL, 0x00, 0x0a, 0xff};
  const uint64_t extra[] = {MAXP - 1u, MAXP, MAXP + 1u, CRPC__MAX_CONTROL_PAYLOAD - 1u,
                            CRPC__MAX_CONTROL_PAYLOAD, CRPC__MAX_CONTROL_PAYLOAD + 1u};
  buf body = {.len = 0};
  fill(&body, 0, 64); /* 64 payload bytes are present whatever the header claims */
  for (size_t t = 0; t < sizeof types; t++) {
    for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges + sizeof extra / sizeof *extra;
         k++) {
      size_t ne = sizeof u32_edges / sizeof *u32_edges;
      uint64_t v = k < ne ? u32_edges[k] : extra[k - ne];
      buf f;
      frame(&f, types[t], 0, 1, (uint32_t)v, &body);
      outcome o = decode(f.b, f.len, MAXP);
      uint32_t lim = limit_of(types[t]);
      if (v > lim && lim == CRPC__MAX_CONTROL_PAYLOAD) {
        assert_int_equal(o.rc, CRPC__FR_PROTO);
        assert_int_equal(o.n, 0);
      } else if (v > lim) {
        assert_int_equal(o.rc, 0);
        assert_int_equal(o.n, 1);
        assert_true(o.f[0].oversized);
        assert_true(o.f[0].length == v);
        assert_int_equal(o.pending, 0); /* skipped, never stored */
      } else if (v > body.len) {
        assert_int_equal(o.rc, 0);
        assert_int_equal(o.n, 0);
        assert_int_equal(o.pending, f.len);
      } else {
        assert_true(o.n >= 1);
        assert_true(o.f[0].length == v);
        assert_false(o.f[0].oversized);
      }
    }
  }
  /* max_payload itself at its edges: 0 and UINT32_MAX. */
  buf f, empty = {.len = 0}, one = {.len = 0};
  put8(&one, 0x42);
  frame(&f, CRPC__F_CALL, 0, 1, 1, &one);
  outcome o = decode(f.b, f.len, 0);
  assert_int_equal(o.n, 1);
  assert_true(o.f[0].oversized);
  frame(&f, CRPC__F_MESSAGE, 0, 1, 0, &empty);
  o = decode(f.b, f.len, 0);
  assert_int_equal(o.n, 1);
  assert_false(o.f[0].oversized);
  frame(&f, CRPC__F_MESSAGE, 0, 1, 0xffffffffu, &body);
  o = decode(f.b, f.len, 0xffffffffu);
  assert_int_equal(o.rc, 0);
  assert_int_equal(o.n, 0); /* within the limit, incomplete */
  assert_int_equal(o.pending, f.len);
}

static void call_id_any(void **state) {
  (void)state;
  buf p, f;
  call_payload(&p);
  for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges; k++) {
    frame(&f, CRPC__F_CALL, CRPC__FL_MESSAGE, (uint32_t)u32_edges[k], (uint32_t)p.len, &p);
    outcome o = decode(f.b, f.len, MAXP);
    assert_int_equal(o.n, 1);
    assert_true(o.f[0].call_id == u32_edges[k]); /* the codec passes ids on; conn.c judges */
    assert_int_equal(o.payload_rc[0], 0);
  }
}

/* A payload decoded directly (length exact, no decoder). */
static int payload_rc(uint8_t type, uint8_t flags, const buf *p) {
  uint8_t *copy = malloc(p->len ? p->len : 1);
  assert_non_null(copy);
  memcpy(copy, p->b, p->len);
  crpc__frame f = {.length = (uint32_t)p->len, .type = type, .flags = flags, .call_id = 1,
                   .payload = p->len ? copy : NULL};
  int rc = payload_check(&f);
  free(copy);
  return rc;
}

/* CALL with method_len m (and m bytes of name when m is small enough to send). */
static void method_len(void **state) {
  (void)state;
  const uint64_t vals[] = {0, 1, 2, 1023, 1024, 1025, 0xfffe, 0xffff};
  for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
    buf p = {.len = 0};
    put16(&p, (uint16_t)vals[k]);
    fill(&p, 'm', vals[k] <= 1100 ? (size_t)vals[k] : 3);
    put32(&p, 0);
    put32(&p, 0);
    int rc = payload_rc(CRPC__F_CALL, 0, &p);
    int ok = vals[k] >= 1 && vals[k] <= CRPC__MAX_METHOD_LEN;
    assert_int_equal(rc, ok ? 0 : CRPC__FR_PROTO);
  }
}

/* A u32 length field followed by `have` bytes: exact is fine, anything else is malformed. For each
 * edge value v the block is sent with min(v, 40) bytes. `build` writes the payload around it. */
typedef void (*build_fn)(buf *p, uint32_t v, size_t have);

static void len_edges(uint8_t type, uint8_t flags, build_fn build) {
  for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges; k++) {
    uint64_t v = u32_edges[k];
    size_t have = v < 40 ? (size_t)v : 40;
    buf p = {.len = 0};
    build(&p, (uint32_t)v, have);
    assert_int_equal(payload_rc(type, flags, &p), v == have ? 0 : CRPC__FR_PROTO);
    if (v > 0 && v < 40) { /* one byte short and one byte over: malformed */
      p.len = 0;
      build(&p, (uint32_t)v, have - 1);
      assert_int_equal(payload_rc(type, flags, &p), CRPC__FR_PROTO);
      p.len = 0;
      build(&p, (uint32_t)(v - 1), have);
      assert_int_equal(payload_rc(type, flags, &p), CRPC__FR_PROTO);
    }
  }
}

static void b_call_md(buf *p, uint32_t v, size_t have) { /* metadata_len */
  put16(p, 3);
  put(p, "s/m", 3);
  put32(p, 0);
  put32(p, v);
  if (have >= 10) { /* one entry filling the block: key "-bin" (binary), any value bytes */
    put16(p, 4);
    put(p, "-bin", 4);
    put32(p, (uint32_t)(have - 10));
    fill(p, 0xff, have - 10);
  } else {
    fill(p, 0, have);
  }
}

static void b_status_text(buf *p, uint32_t v, size_t have) {
  put32(p, 2);
  put32(p, v);
  fill(p, 't', have);
  put32(p, 0);
  put32(p, 0);
}

static void b_status_details(buf *p, uint32_t v, size_t have) {
  put32(p, 2);
  put32(p, 0);
  put32(p, 0);
  put32(p, v);
  fill(p, 0xd0, have);
}

static void b_goaway_text(buf *p, uint32_t v, size_t have) {
  put32(p, 1);
  put32(p, 0);
  put32(p, v);
  fill(p, 'g', have);
}

static void b_md_value(buf *p, uint32_t v, size_t have) { /* inside a CALL's metadata */
  put16(p, 3);
  put(p, "s/m", 3);
  put32(p, 0);
  put32(p, (uint32_t)(7 + have));
  put16(p, 1);
  put8(p, 'k');
  put32(p, v);
  fill(p, 'v', have);
}

static void length_fields(void **state) {
  (void)state;
  len_edges(CRPC__F_STATUS, 0, b_status_text);
  len_edges(CRPC__F_STATUS, 0, b_status_details);
  len_edges(CRPC__F_GOAWAY, 0, b_goaway_text);
  len_edges(CRPC__F_CALL, 0, b_md_value);
  /* metadata_len: 0 and exact blocks walk; the odd cases cannot be cut "one short" cleanly. */
  for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges; k++) {
    uint64_t v = u32_edges[k];
    buf p = {.len = 0};
    size_t have = v == 0 ? 0 : (v < 40 ? (size_t)v : 40);
    b_call_md(&p, (uint32_t)v, have);
    int rc = payload_rc(CRPC__F_CALL, 0, &p);
    if (v == 0)
      assert_int_equal(rc, 0);
    else if (v != have)
      assert_int_equal(rc, CRPC__FR_PROTO);
    else
      assert_int_equal(rc, have >= 10 ? 0 : CRPC__FR_PROTO); /* 1..9 bytes: no whole entry */
  }
}

/* Metadata key_len 0, 1, 255, 256, 65535. */
static void md_key_len(void **state) {
  (void)state;
  const uint64_t vals[] = {0, 1, 254, 255, 256, 0xfffe, 0xffff};
  for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
    buf p = {.len = 0};
    size_t have = vals[k] <= 300 ? (size_t)vals[k] : 8;
    put16(&p, 3);
    put(&p, "s/m", 3);
    put32(&p, 0);
    put32(&p, (uint32_t)(2 + have + 4));
    put16(&p, (uint16_t)vals[k]);
    fill(&p, 'k', have);
    put32(&p, 0);
    int ok = vals[k] >= 1 && vals[k] <= 255;
    assert_int_equal(payload_rc(CRPC__F_CALL, 0, &p), ok ? 0 : CRPC__FR_PROTO);
  }
}

/* Fields that may hold any value: timeout, code, last_call_id, goaway code; they round-trip. */
static void any_value_fields(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges; k++) {
    uint32_t v = (uint32_t)u32_edges[k];
    uint8_t b[64];
    crpc__frame f = {.type = CRPC__F_CALL, .payload = b};
    uint8_t *e = crpc__call_fixed_encode(b, "s/m", 3, v, NULL, 0);
    f.length = (uint32_t)(e - b);
    crpc__call_hdr c;
    assert_int_equal(crpc__call_decode(&f, &c), 0);
    assert_true(c.timeout_ms == v);

    e = crpc__status_fixed_encode(b, v, NULL, 0, NULL, 0, NULL, 0);
    f.length = (uint32_t)(e - b);
    f.type = CRPC__F_STATUS;
    crpc__status_hdr s;
    assert_int_equal(crpc__status_decode(&f, &s), 0);
    assert_true(s.code == v);

    e = crpc__goaway_encode(b, v, ~v, NULL, 0);
    f.length = (uint32_t)(e - b);
    f.type = CRPC__F_GOAWAY;
    crpc__goaway g;
    assert_int_equal(crpc__goaway_decode(&f, &g), 0);
    assert_true(g.last_call_id == v && g.code == (uint32_t)~v);
  }
}

/* WINDOW increment: 0 is malformed, anything else fine; the payload is exactly 4 bytes. */
static void window_increment(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof u32_edges / sizeof *u32_edges; k++) {
    buf p = {.len = 0};
    put32(&p, (uint32_t)u32_edges[k]);
    assert_int_equal(payload_rc(CRPC__F_WINDOW, 0, &p), u32_edges[k] ? 0 : CRPC__FR_PROTO);
    put8(&p, 0);
    assert_int_equal(payload_rc(CRPC__F_WINDOW, 0, &p), CRPC__FR_PROTO);
    p.len = 3;
    assert_int_equal(payload_rc(CRPC__F_WINDOW, 0, &p), CRPC__FR_PROTO);
  }
}

/* The size helpers saturate instead of wrapping. */
static void size_helpers(void **state) {
  (void)state;
  assert_true(crpc__call_fixed_size(SIZE_MAX, 1) == SIZE_MAX);
  assert_true(crpc__call_fixed_size(1, SIZE_MAX - 5) == SIZE_MAX);
  assert_true(crpc__status_fixed_size(SIZE_MAX, SIZE_MAX, SIZE_MAX) == SIZE_MAX);
  assert_true(crpc__goaway_size(SIZE_MAX - 11) == SIZE_MAX);
  assert_true(crpc__md_entry_size(SIZE_MAX, 0) == SIZE_MAX);
  assert_true(crpc__call_fixed_size(0, 0) == 10);
  assert_true(crpc__status_fixed_size(0, 0, 0) == 16);
  assert_true(crpc__goaway_size(0) == 12);
  assert_true(crpc__md_entry_size(1, 1) == 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flips_call),      cmocka_unit_test(flips_status),
      cmocka_unit_test(flips_goaway),    cmocka_unit_test(flips_control),
      cmocka_unit_test(header_length),   cmocka_unit_test(call_id_any),
      cmocka_unit_test(method_len),      cmocka_unit_test(length_fields),
      cmocka_unit_test(md_key_len),      cmocka_unit_test(any_value_fields),
      cmocka_unit_test(window_increment), cmocka_unit_test(size_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
