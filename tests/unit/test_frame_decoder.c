/* Streaming decoder: the same byte stream must yield the same frames however it is cut into
 * feeds (whole, byte by byte, every 2-way split, every 3-way split of a short stream); whole
 * frames come straight from the fed bytes; oversized frames are skipped without buffering; pause,
 * resume, trim and the preface behave as frame.h says. Every feed is an exact-size heap copy so
 * AddressSanitizer catches a read past the fed bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/frame.h"

#define MAXP 64 /* max_payload of most decoders here: small, so oversize is cheap to test */

/* ---- a stream builder ------------------------------------------------------------------------*/

typedef struct stream {
  uint8_t *b;
  size_t len;
  size_t starts[32], ends[32]; /* byte range of each frame, for the zero-copy check */
  int n;
} stream;

static void s_bytes(stream *s, const void *p, size_t n) {
  s->b = realloc(s->b, s->len + n + 1);
  assert_non_null(s->b);
  if (n)
    memcpy(s->b + s->len, p, n);
  s->len += n;
}

static void s_preface(stream *s) {
  uint8_t p[CRPC__PREFACE_LEN];
  crpc__preface_encode(p);
  s_bytes(s, p, sizeof p);
}

/* Appends a frame whose payload bytes are a pattern derived from its index. */
static void s_frame(stream *s, uint8_t type, uint8_t flags, uint32_t id, size_t plen) {
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, type, flags, id, (uint32_t)plen);
  s->starts[s->n] = s->len;
  s_bytes(s, h, sizeof h);
  for (size_t i = 0; i < plen; i++) {
    uint8_t c = (uint8_t)(i * 7 + (size_t)s->n);
    s_bytes(s, &c, 1);
  }
  s->ends[s->n++] = s->len;
}

/* ---- a recording callback --------------------------------------------------------------------*/

typedef struct rec {
  int n;
  crpc__frame f[32];
  uint8_t *copy[32];
  size_t start[32];             /* stream offset of each frame, from the stream under test */
  int from_feed[32];            /* payload pointed into the current feed */
  const uint8_t *feed;          /* current feed */
  size_t feed_len, feed_off;    /* and its offset in the stream */
  int pause_every;              /* return CRPC__DEC_PAUSE after each frame */
  int fail_at;                  /* return -77 on this frame (1-based), 0: never */
} rec;

static int on_frame(void *ud, const crpc__frame *f) {
  rec *r = ud;
  assert_true(r->n < 32);
  r->f[r->n] = *f;
  r->copy[r->n] = NULL;
  r->from_feed[r->n] = 0;
  if (f->payload != NULL) {
    r->copy[r->n] = malloc(f->length + 1);
    memcpy(r->copy[r->n], f->payload, f->length);
    r->from_feed[r->n] = r->feed != NULL && f->payload >= r->feed &&
                         f->payload + f->length <= r->feed + r->feed_len;
  }
  r->n++;
  if (r->fail_at == r->n)
    return -77;
  return r->pause_every ? CRPC__DEC_PAUSE : 0;
}

static void rec_free(rec *r) {
  for (int i = 0; i < r->n; i++)
    free(r->copy[i]);
  r->n = 0;
}

static void rec_same(const rec *a, const rec *b) {
  assert_int_equal(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    assert_int_equal(a->f[i].length, b->f[i].length);
    assert_int_equal(a->f[i].type, b->f[i].type);
    assert_int_equal(a->f[i].flags, b->f[i].flags);
    assert_int_equal(a->f[i].call_id, b->f[i].call_id);
    assert_int_equal(a->f[i].oversized, b->f[i].oversized);
    assert_int_equal(a->copy[i] == NULL, b->copy[i] == NULL);
    if (a->copy[i])
      assert_memory_equal(a->copy[i], b->copy[i], a->f[i].length);
  }
}

/* Feeds s->b[off, off+n) as an exact-size heap copy. */
static int feed_part(crpc__decoder *d, rec *r, const stream *s, size_t off, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  memcpy(c, s->b + off, n);
  r->feed = c;
  r->feed_len = n;
  r->feed_off = off;
  int rc = crpc__decoder_feed(d, c, n, on_frame, r);
  r->feed = NULL;
  free(c);
  return rc;
}

/* Feeds the stream cut at the given offsets; checks the buffer bound after every feed and that
 * frames lying wholly inside one feed were not copied. */
static void feed_cuts(const stream *s, const size_t *cuts, int ncuts, rec *r) {
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 1);
  size_t prev = 0;
  for (int i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : s->len;
    int first = r->n;
    assert_int_equal(feed_part(&d, r, s, prev, end - prev), 0);
    assert_true(d.cap <= CRPC__HDR_LEN + CRPC__MAX_CONTROL_PAYLOAD);
    for (int k = first; k < r->n; k++) {
      /* Frame k of the recording is frame k of the stream. */
      if (r->copy[k] != NULL && s->starts[k] >= prev && s->ends[k] <= end)
        assert_true(r->from_feed[k]);
    }
    prev = end;
  }
  assert_int_equal(d.len, 0);
  assert_int_equal(d.skip, 0);
  assert_int_equal(d.want_preface, 0);
  crpc__decoder_free(&d);
}

/* A stream with every frame kind, an unknown type, empty payloads and an oversized frame. */
static void build_mixed(stream *s) {
  memset(s, 0, sizeof *s);
  s_preface(s);
  s_frame(s, CRPC__F_CALL, CRPC__FL_END | CRPC__FL_MESSAGE, 1, 30);
  s_frame(s, CRPC__F_MESSAGE, 0, 1, MAXP);        /* exactly the limit */
  s_frame(s, CRPC__F_HALF_CLOSE, 0, 1, 0);
  s_frame(s, CRPC__F_PING, 0, 0, CRPC__PING_LEN);
  s_frame(s, 0x42, 0x99, 7, 100);                 /* unknown type: bounded by the control limit */
  s_frame(s, CRPC__F_MESSAGE, 0, 3, MAXP + 1);    /* oversized: header only */
  s_frame(s, CRPC__F_STATUS, CRPC__FL_MESSAGE, 1, MAXP - 1);
  s_frame(s, CRPC__F_CANCEL, 0, 5, 0);
  s_frame(s, CRPC__F_WINDOW, 0, 0, 4);
  s_frame(s, CRPC__F_GOAWAY, 0, 0, 12);
}

static void build_short(stream *s) {
  memset(s, 0, sizeof *s);
  s_preface(s);
  s_frame(s, CRPC__F_CALL, 3, 1, 5);
  s_frame(s, CRPC__F_PING, 1, 0, 0);
  s_frame(s, CRPC__F_MESSAGE, 0, 1, MAXP + 3); /* oversized */
  s_frame(s, CRPC__F_STATUS, 2, 1, 2);
}

static void check_expected_mixed(const rec *r) {
  assert_int_equal(r->n, 10);
  assert_int_equal(r->f[0].type, CRPC__F_CALL);
  assert_int_equal(r->f[0].flags, 3);
  assert_int_equal(r->f[0].length, 30);
  assert_int_equal(r->f[4].type, 0x42);
  assert_int_equal(r->f[4].call_id, 7);
  assert_int_equal(r->f[5].oversized, 1);
  assert_int_equal(r->f[5].length, MAXP + 1);
  assert_null(r->copy[5]);
  for (int i = 0; i < r->n; i++)
    if (i != 5) {
      assert_int_equal(r->f[i].oversized, 0);
      assert_non_null(r->copy[i]);
    }
  assert_int_equal(r->f[9].type, CRPC__F_GOAWAY);
}

/* ---- the split tests -------------------------------------------------------------------------*/

static void test_whole(void **state) {
  (void)state;
  stream s;
  build_mixed(&s);
  rec r = {0};
  feed_cuts(&s, NULL, 0, &r);
  check_expected_mixed(&r);
  for (int i = 0; i < r.n; i++)
    if (r.copy[i])
      assert_true(r.from_feed[i]); /* zero copy for everything fed whole */
  rec_free(&r);
  free(s.b);
}

static void test_byte_by_byte(void **state) {
  (void)state;
  stream s;
  build_mixed(&s);
  rec whole = {0}, bytes = {0};
  feed_cuts(&s, NULL, 0, &whole);
  size_t *cuts = malloc(s.len * sizeof *cuts);
  for (size_t i = 0; i + 1 < s.len; i++)
    cuts[i] = i + 1;
  feed_cuts(&s, cuts, (int)s.len - 1, &bytes);
  rec_same(&whole, &bytes);
  free(cuts);
  rec_free(&whole);
  rec_free(&bytes);
  free(s.b);
}

static void test_every_two_way_split(void **state) {
  (void)state;
  stream s;
  build_mixed(&s);
  rec whole = {0};
  feed_cuts(&s, NULL, 0, &whole);
  for (size_t k = 0; k <= s.len; k++) {
    rec r = {0};
    feed_cuts(&s, &k, 1, &r);
    rec_same(&whole, &r);
    rec_free(&r);
  }
  rec_free(&whole);
  free(s.b);
}

static void test_every_three_way_split(void **state) {
  (void)state;
  stream s;
  build_short(&s);
  rec whole = {0};
  feed_cuts(&s, NULL, 0, &whole);
  assert_int_equal(whole.n, 4);
  assert_int_equal(whole.f[2].oversized, 1);
  for (size_t i = 0; i <= s.len; i++)
    for (size_t j = i; j <= s.len; j++) {
      size_t cuts[2] = {i, j};
      rec r = {0};
      feed_cuts(&s, cuts, 2, &r);
      rec_same(&whole, &r);
      rec_free(&r);
    }
  rec_free(&whole);
  free(s.b);
}

/* ---- limits ----------------------------------------------------------------------------------*/

static int feed_bytes(crpc__decoder *d, rec *r, const void *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  memcpy(c, p, n);
  int rc = crpc__decoder_feed(d, c, n, on_frame, r);
  free(c);
  return rc;
}

static void test_oversized_not_buffered(void **state) {
  (void)state;
  /* Declared lengths of limit+1, 2^31 and 2^32-1: delivered at once, header only, then skipped
   * byte by byte without the buffer growing; the frame after the skipped one decodes. */
  static const uint32_t lens[] = {MAXP + 1, 0x80000000u, 0xffffffffu};
  for (int i = 0; i < 3; i++) {
    crpc__decoder d;
    rec r = {0};
    crpc__decoder_init(&d, MAXP, 0);
    uint8_t h[CRPC__HDR_LEN];
    crpc__hdr_encode(h, CRPC__F_CALL, 3, 9, lens[i]);
    for (int b = 0; b < CRPC__HDR_LEN; b++)
      assert_int_equal(feed_bytes(&d, &r, h + b, 1), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.f[0].oversized, 1);
    assert_int_equal(r.f[0].length, lens[i]);
    assert_null(r.copy[0]);
    assert_int_equal(d.skip, lens[i]);
    /* The payload (or 256 KiB of it), in pieces of 4 KiB or less. */
    uint8_t junk[4096];
    memset(junk, 0xEE, sizeof junk);
    uint64_t left = lens[i] < 64 * sizeof junk ? lens[i] : 64 * sizeof junk;
    while (left > 0) {
      size_t n = left < sizeof junk ? (size_t)left : sizeof junk;
      assert_int_equal(feed_bytes(&d, &r, junk, n), 0);
      left -= n;
    }
    assert_true(d.cap <= CRPC__HDR_LEN);
    assert_int_equal(d.len, 0);
    if (lens[i] == MAXP + 1) {
      crpc__hdr_encode(h, CRPC__F_PING, 0, 0, 8);
      assert_int_equal(feed_bytes(&d, &r, h, sizeof h), 0);
      assert_int_equal(feed_bytes(&d, &r, "12345678", 8), 0);
      assert_int_equal(d.skip, 0);
      assert_int_equal(r.n, 2);
      assert_int_equal(r.f[1].type, CRPC__F_PING);
      assert_memory_equal(r.copy[1], "12345678", 8);
    } else {
      assert_int_equal(d.skip, (uint64_t)lens[i] - 64 * sizeof junk);
    }
    rec_free(&r);
    crpc__decoder_free(&d);
  }
}

static void test_limit_boundaries(void **state) {
  (void)state;
  /* 0, 1, limit-1 and limit are delivered with their payload; limit+1 is oversized. */
  static const uint32_t lens[] = {0, 1, MAXP - 1, MAXP, MAXP + 1};
  static const uint8_t types[] = {CRPC__F_CALL, CRPC__F_MESSAGE, CRPC__F_STATUS};
  for (int t = 0; t < 3; t++)
    for (int i = 0; i < 5; i++) {
      stream s = {0};
      s_frame(&s, types[t], 0, 1, lens[i]);
      crpc__decoder d;
      rec r = {0};
      crpc__decoder_init(&d, MAXP, 0);
      assert_int_equal(feed_bytes(&d, &r, s.b, s.len), 0);
      assert_int_equal(r.n, 1);
      assert_int_equal(r.f[0].length, lens[i]);
      assert_int_equal(r.f[0].oversized, lens[i] > MAXP);
      assert_int_equal(r.copy[0] == NULL, lens[i] > MAXP);
      assert_int_equal(d.len, 0);
      rec_free(&r);
      crpc__decoder_free(&d);
      free(s.b);
    }
}

static void test_control_limit(void **state) {
  (void)state;
  /* Control and unknown frames: up to CRPC__MAX_CONTROL_PAYLOAD, whatever max_payload is; one
   * byte more is a protocol error, reported as soon as the header is in. */
  static const uint8_t types[] = {CRPC__F_HALF_CLOSE, CRPC__F_CANCEL, CRPC__F_PING,
                                  CRPC__F_GOAWAY,     CRPC__F_WINDOW, CRPC__F_HEADERS,
                                  0x00,               0x0A,           0xFF};
  for (size_t t = 0; t < sizeof types; t++) {
    crpc__decoder d;
    rec r = {0};
    uint8_t h[CRPC__HDR_LEN];
    crpc__decoder_init(&d, 1u << 20, 0);
    crpc__hdr_encode(h, types[t], 0, 0, CRPC__MAX_CONTROL_PAYLOAD + 1);
    assert_int_equal(feed_bytes(&d, &r, h, sizeof h), CRPC__FR_PROTO);
    assert_int_equal(r.n, 0);
    crpc__decoder_free(&d);

    stream s = {0};
    s_frame(&s, types[t], 0, 0, CRPC__MAX_CONTROL_PAYLOAD);
    crpc__decoder_init(&d, 16, 0); /* max_payload does not apply to these */
    assert_int_equal(feed_bytes(&d, &r, s.b, s.len - 1), 0);
    assert_int_equal(feed_bytes(&d, &r, s.b + s.len - 1, 1), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.f[0].length, CRPC__MAX_CONTROL_PAYLOAD);
    assert_true(d.cap <= CRPC__HDR_LEN + CRPC__MAX_CONTROL_PAYLOAD);
    rec_free(&r);
    crpc__decoder_free(&d);
    free(s.b);
  }
}

static void test_huge_limit_grows_with_data(void **state) {
  (void)state;
  /* With a 4 GiB limit a peer may announce 4 GiB; the buffer follows what actually arrived. */
  crpc__decoder d;
  rec r = {0};
  crpc__decoder_init(&d, UINT32_MAX, 0);
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, CRPC__F_MESSAGE, 0, 1, UINT32_MAX);
  uint8_t junk[100] = {0};
  assert_int_equal(feed_bytes(&d, &r, h, sizeof h), 0);
  assert_int_equal(feed_bytes(&d, &r, junk, sizeof junk), 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(d.len, CRPC__HDR_LEN + sizeof junk);
  assert_true(d.cap <= 2 * (CRPC__HDR_LEN + sizeof junk) + 64);
  crpc__decoder_free(&d);
}

static void test_reserved_bits(void **state) {
  (void)state;
  crpc__decoder d;
  rec r = {0};
  uint8_t h[CRPC__HDR_LEN];
  crpc__decoder_init(&d, MAXP, 0);
  crpc__hdr_encode(h, CRPC__F_PING, 0, 0, 8);
  h[7] = 1;
  assert_int_equal(feed_bytes(&d, &r, h, sizeof h), CRPC__FR_PROTO);
  crpc__decoder_free(&d);
  /* Also when the header is assembled across feeds. */
  crpc__decoder_init(&d, MAXP, 0);
  h[7] = 0;
  h[6] = 0x80;
  assert_int_equal(feed_bytes(&d, &r, h, 5), 0);
  assert_int_equal(feed_bytes(&d, &r, h + 5, 7), CRPC__FR_PROTO);
  assert_int_equal(r.n, 0);
  crpc__decoder_free(&d);
}

/* ---- preface ---------------------------------------------------------------------------------*/

static void test_preface(void **state) {
  (void)state;
  crpc__decoder d;
  rec r = {0};
  crpc__decoder_init(&d, MAXP, 1);
  /* A stray HTTP client is refused on its first byte that differs. */
  assert_int_equal(feed_bytes(&d, &r, "GET / HTTP/1.1\r\n", 16), CRPC__FR_BADMAGIC);
  crpc__decoder_free(&d);

  crpc__decoder_init(&d, MAXP, 1);
  assert_int_equal(feed_bytes(&d, &r, "CR", 2), 0);
  assert_int_equal(feed_bytes(&d, &r, "X", 1), CRPC__FR_BADMAGIC);
  crpc__decoder_free(&d);

  crpc__decoder_init(&d, MAXP, 1);
  assert_int_equal(feed_bytes(&d, &r, "CRPC\r\n\x02\x00", 8), CRPC__FR_VERSION);
  crpc__decoder_free(&d);

  /* A newer minor is accepted and recorded, one byte at a time. */
  crpc__decoder_init(&d, MAXP, 1);
  for (int i = 0; i < 8; i++)
    assert_int_equal(feed_bytes(&d, &r, &"CRPC\r\n\x01\x07"[i], 1), 0);
  assert_int_equal(d.want_preface, 0);
  assert_int_equal(d.peer_minor, 7);
  assert_int_equal(r.n, 0);
  crpc__decoder_free(&d);

  /* Without want_preface, the magic would be a header with reserved bits set. */
  crpc__decoder_init(&d, MAXP, 0);
  assert_int_equal(feed_bytes(&d, &r, "CRPC\r\n\x01\x00\0\0\0\0", 12), CRPC__FR_PROTO);
  crpc__decoder_free(&d);
}

/* ---- pause, resume, callback errors, trim ----------------------------------------------------*/

static void test_pause_resume(void **state) {
  (void)state;
  stream s;
  build_mixed(&s);
  rec whole = {0};
  feed_cuts(&s, NULL, 0, &whole);

  /* Pausing after every frame, resuming with (NULL, 0) each time. */
  rec r = {0};
  r.pause_every = 1;
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 1);
  int rc = feed_bytes(&d, &r, s.b, s.len);
  int rounds = 0;
  while (rc == CRPC__DEC_PAUSE) {
    assert_int_equal(d.paused, 1);
    int before = r.n;
    rc = crpc__decoder_feed(&d, NULL, 0, on_frame, &r);
    assert_true(r.n <= before + 1);
    rounds++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(d.paused, 0);
  assert_int_equal(rounds, whole.n);
  rec_same(&whole, &r);
  rec_free(&r);
  crpc__decoder_free(&d);

  /* New bytes fed while paused queue behind the unread ones, in order; every 2-way split. */
  for (size_t k = 0; k <= s.len; k++) {
    rec p = {0};
    p.pause_every = 1;
    crpc__decoder_init(&d, MAXP, 1);
    rc = feed_bytes(&d, &p, s.b, k);
    rc = feed_bytes(&d, &p, s.b + k, s.len - k);
    while (rc == CRPC__DEC_PAUSE)
      rc = crpc__decoder_feed(&d, NULL, 0, on_frame, &p);
    assert_int_equal(rc, 0);
    rec_same(&whole, &p);
    rec_free(&p);
    crpc__decoder_free(&d);
  }
  rec_free(&whole);
  free(s.b);
}

static void test_callback_error(void **state) {
  (void)state;
  stream s;
  build_mixed(&s);
  rec r = {0};
  r.fail_at = 3;
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 1);
  assert_int_equal(feed_bytes(&d, &r, s.b, s.len), -77);
  assert_int_equal(r.n, 3);
  rec_free(&r);
  crpc__decoder_free(&d);
  free(s.b);
}

static void test_trim(void **state) {
  (void)state;
  stream s = {0};
  s_frame(&s, CRPC__F_MESSAGE, 0, 1, 40);
  crpc__decoder d;
  rec r = {0};
  crpc__decoder_init(&d, MAXP, 0);
  assert_int_equal(feed_bytes(&d, &r, s.b, 20), 0);
  assert_int_equal(d.len, 20);
  crpc__decoder_trim(&d); /* something pending: kept */
  assert_non_null(d.buf);
  assert_int_equal(d.len, 20);
  assert_int_equal(feed_bytes(&d, &r, s.b + 20, s.len - 20), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(d.len, 0);
  assert_non_null(d.buf);
  crpc__decoder_trim(&d); /* idle: released */
  assert_null(d.buf);
  assert_int_equal(d.cap, 0);
  /* Still usable afterwards. */
  assert_int_equal(feed_bytes(&d, &r, s.b, s.len), 0);
  assert_int_equal(r.n, 2);
  assert_null(d.buf);
  crpc__decoder_free(&d);
  crpc__decoder_free(&d); /* twice is harmless */
  rec_free(&r);
  free(s.b);
}

static void test_empty_feeds(void **state) {
  (void)state;
  crpc__decoder d;
  rec r = {0};
  crpc__decoder_init(&d, MAXP, 1);
  assert_int_equal(crpc__decoder_feed(&d, NULL, 0, on_frame, &r), 0);
  assert_int_equal(crpc__decoder_feed(&d, (const uint8_t *)"", 0, on_frame, &r), 0);
  assert_null(d.buf);
  assert_int_equal(r.n, 0);
  crpc__decoder_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_every_two_way_split),
      cmocka_unit_test(test_every_three_way_split),
      cmocka_unit_test(test_oversized_not_buffered),
      cmocka_unit_test(test_limit_boundaries),
      cmocka_unit_test(test_control_limit),
      cmocka_unit_test(test_huge_limit_grows_with_data),
      cmocka_unit_test(test_reserved_bits),
      cmocka_unit_test(test_preface),
      cmocka_unit_test(test_pause_resume),
      cmocka_unit_test(test_callback_error),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_empty_feeds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
