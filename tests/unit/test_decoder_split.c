/* The streaming decoder's split receive (crpc__decoder_split, crpc__decoder_take_tail and what
 * crpc__decoder_missing / _space / _space_ready / _commit / _feed do while a frame is split, in
 * frame.c): a partly received frame whose bytes from `at` on go to a block of their own.
 *
 * Every frame's payload is a pattern, and every delivered frame is checked byte by byte against
 * the stream it came from (head in f->payload, the rest in f->tail). Feeds are exact-size heap
 * copies freed right after the feed, so ASan sees a read past them or a frame still pointing into
 * them; a tail the callback took is read after the decoder moved on (ASan: the decoder must not
 * have freed it) and freed by the test; a tail nobody took must be freed by the decoder
 * (LeakSanitizer checks at exit). Allocations can be failed (--wrap=malloc,realloc, see
 * CMakeLists.txt) to check that a refused split and a failed growth change nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failalloc.h" /* linked with --wrap=malloc,calloc,realloc: fa_arm() fails the N-th */
#include "wire/frame.h"

#define MAXP (16u << 20)

/* ---- streams of frames -----------------------------------------------------------------------*/

typedef struct stream {
  uint8_t *b;
  size_t len, cap;
  size_t start[16], end[16]; /* byte range of each frame */
  int n;
} stream;

static void s_raw(stream *s, const void *p, size_t n) {
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n + 1) cap *= 2;
    s->b = realloc(s->b, cap);
    assert_non_null(s->b);
    s->cap = cap;
  }
  if (n && p) memcpy(s->b + s->len, p, n);
  s->len += n;
}

static uint8_t pat(size_t i, unsigned seed) {
  return (uint8_t)(i * 131u + seed * 977u + (i >> 8) + (i >> 16));
}

/* A frame of type `type` whose payload is plen pattern bytes (seed: the frame's index). */
static size_t s_frame(stream *s, uint8_t type, uint8_t flags, uint32_t id, size_t plen) {
  assert_true(s->n < 16);
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, type, flags, id, (uint32_t)plen);
  s->start[s->n] = s->len;
  s_raw(s, h, sizeof h);
  size_t at = s->len;
  s_raw(s, NULL, plen);
  for (size_t i = 0; i < plen; i++) s->b[at + i] = pat(i, (unsigned)s->n);
  s->end[s->n++] = s->len;
  return at - CRPC__HDR_LEN;
}

static size_t s_msg(stream *s, uint32_t id, size_t plen) {
  return s_frame(s, CRPC__F_MESSAGE, 0, id, plen);
}

static void s_free(stream *s) {
  free(s->b);
  memset(s, 0, sizeof *s);
}

/* ---- a recording callback --------------------------------------------------------------------*/

#define MAXF 16

typedef struct got {
  crpc__frame f;
  uint8_t *bytes;        /* head and tail joined (a copy), f.length bytes */
  int head_in_buf;       /* f.payload pointed into the decoder's buffer */
  int tail_is_decoders;  /* f.tail was the decoder's tail block */
  uint8_t *taken;        /* the tail, when the callback took it (the test frees it) */
  int second_take_null;  /* taking it again gave NULL */
  int take_buf_null;     /* crpc__decoder_take gave NULL (asked for split frames only) */
  int forged_take_null;  /* take_tail with another tail pointer gave NULL */
} got;

typedef struct rec {
  crpc__decoder *d;
  got g[MAXF];
  int n;
  int take;              /* take the tail of split frames */
  int pause_on_split;    /* return CRPC__DEC_PAUSE on split frames */
  int pause_on;          /* ... and on frame number pause_on (1-based), 0: never */
  int fail_on_split;     /* return -77 on split frames */
} rec;

static int on_frame(void *ud, const crpc__frame *f) {
  rec *r = ud;
  crpc__decoder *d = r->d;
  assert_true(r->n < MAXF);
  got *g = &r->g[r->n++];
  memset(g, 0, sizeof *g);
  g->f = *f;
  if (f->oversized) { /* header only: its payload is being skipped */
    assert_null(f->payload);
    assert_null(f->tail);
    return 0;
  }
  assert_non_null(f->payload);
  g->bytes = malloc(f->length + 1);
  assert_non_null(g->bytes);
  uintptr_t pp = (uintptr_t)f->payload, b0 = (uintptr_t)d->buf;
  g->head_in_buf = d->buf && pp >= b0 && pp < b0 + d->cap;
  if (f->tail) {
    assert_true(f->head_len < f->length);
    memcpy(g->bytes, f->payload, f->head_len);
    memcpy(g->bytes + f->head_len, f->tail, f->length - f->head_len);
    g->tail_is_decoders = f->tail == d->tail;
    /* a split frame's head is no frame of its own: the buffer is not handed over */
    g->take_buf_null = crpc__decoder_take(d, f) == NULL;
    crpc__frame forged = *f;
    uint8_t other;
    forged.tail = &other;
    g->forged_take_null = crpc__decoder_take_tail(d, &forged) == NULL;
    if (r->take) {
      g->taken = crpc__decoder_take_tail(d, f);
      assert_ptr_equal(g->taken, f->tail);
      g->second_take_null = crpc__decoder_take_tail(d, f) == NULL;
    }
    if (r->fail_on_split) return -77;
    if (r->pause_on_split) return CRPC__DEC_PAUSE;
  } else {
    assert_int_equal(f->head_len, 0);
    memcpy(g->bytes, f->payload, f->length);
    /* nothing to take from a frame that was not split */
    assert_null(crpc__decoder_take_tail(d, f));
  }
  if (r->pause_on == r->n) return CRPC__DEC_PAUSE;
  return 0;
}

static void rec_init(rec *r, crpc__decoder *d) {
  memset(r, 0, sizeof *r);
  r->d = d;
}

static void rec_free(rec *r) {
  for (int i = 0; i < r->n; i++) {
    free(r->g[i].bytes);
    free(r->g[i].taken);
  }
  r->n = 0;
}

/* Delivery k is frame `idx` of s, intact; split at `at` (frame offset, header included) or not
 * split (at 0). */
static void check_got(const rec *r, int k, const stream *s, int idx, size_t at) {
  assert_true(k < r->n);
  const got *g = &r->g[k];
  size_t flen = s->end[idx] - s->start[idx];
  assert_int_equal(g->f.length, flen - CRPC__HDR_LEN);
  assert_int_equal(g->f.call_id, crpc__be32_get(s->b + s->start[idx] + 8));
  if (memcmp(g->bytes, s->b + s->start[idx] + CRPC__HDR_LEN, g->f.length) != 0)
    fail_msg("frame %d (delivery %d): payload bytes differ", idx, k);
  if (at) {
    assert_non_null(g->f.tail);
    assert_int_equal(g->f.head_len, at - CRPC__HDR_LEN);
    assert_true(g->head_in_buf);
    assert_true(g->tail_is_decoders);
    assert_true(g->take_buf_null);
    assert_true(g->forged_take_null);
    if (g->taken) {
      assert_true(g->second_take_null);
      /* still ours after the decoder went on: the bytes are the frame's from `at` on */
      if (memcmp(g->taken, s->b + s->start[idx] + at, flen - at) != 0)
        fail_msg("frame %d: the taken tail changed after the callback", idx);
    }
  } else {
    assert_null(g->f.tail);
    assert_int_equal(g->f.head_len, 0);
    assert_null(g->taken);
  }
}

/* Feeds s->b[off, off + n) as an exact-size heap copy. */
static int feed(crpc__decoder *d, rec *r, const stream *s, size_t off, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, s->b + off, n);
  int rc = crpc__decoder_feed(d, n ? c : NULL, n, on_frame, r);
  memset(c, 0xDD, n ? n : 1);
  free(c);
  return rc;
}

/* The decoder's state, to check that a refused call changed nothing. */
typedef struct snap {
  uint8_t *buf, *tail;
  size_t len, cap, tail_at, tail_len, tail_cap, missing;
  uint64_t skip;
  int paused, want_preface, taken;
} snap;

static snap snap_of(const crpc__decoder *d) {
  snap s;
  memset(&s, 0, sizeof s);
  s.buf = d->buf;
  s.tail = d->tail;
  s.len = d->len;
  s.cap = d->cap;
  s.tail_at = d->tail_at;
  s.tail_len = d->tail_len;
  s.tail_cap = d->tail_cap;
  s.missing = crpc__decoder_missing(d);
  s.skip = d->skip;
  s.paused = d->paused;
  s.want_preface = d->want_preface;
  s.taken = d->taken;
  return s;
}

static void assert_snap_equal(const snap *a, const snap *b) {
  assert_ptr_equal(a->buf, b->buf);
  assert_ptr_equal(a->tail, b->tail);
  assert_int_equal(a->len, b->len);
  assert_int_equal(a->cap, b->cap);
  assert_int_equal(a->tail_at, b->tail_at);
  assert_int_equal(a->tail_len, b->tail_len);
  assert_int_equal(a->tail_cap, b->tail_cap);
  assert_int_equal(a->missing, b->missing);
  assert_int_equal(a->skip, b->skip);
  assert_int_equal(a->paused, b->paused);
  assert_int_equal(a->want_preface, b->want_preface);
  assert_int_equal(a->taken, b->taken);
}

/* crpc__decoder_split(d, at) must be refused and change nothing. */
static void refused(crpc__decoder *d, size_t at) {
  snap before = snap_of(d);
  if (crpc__decoder_split(d, at) != -1) fail_msg("split at %zu was not refused", at);
  snap after = snap_of(d);
  assert_snap_equal(&before, &after);
}

/* ---- refusals --------------------------------------------------------------------------------*/

static void split_refused(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 40);      /* 0: small, whole */
  s_msg(&s, 3, 100000);  /* 1: large */
  s_msg(&s, 5, 30);      /* 2 */
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  /* nothing received */
  refused(&d, CRPC__HDR_LEN);
  refused(&d, 0);
  /* frames received whole: nothing partial */
  assert_int_equal(feed(&d, &r, &s, 0, s.end[0]), 0);
  assert_int_equal(r.n, 1);
  refused(&d, CRPC__HDR_LEN);
  /* a header not yet complete */
  assert_int_equal(feed(&d, &r, &s, s.start[1], 7), 0);
  for (size_t at = 0; at <= 20; at++) refused(&d, at);
  /* 1000 bytes of the large frame in hand */
  assert_int_equal(feed(&d, &r, &s, s.start[1] + 7, 1000 - 7), 0);
  assert_int_equal(crpc__decoder_missing(&d), s.end[1] - s.start[1] - 1000);
  refused(&d, 0);
  refused(&d, CRPC__HDR_LEN - 1);
  refused(&d, 1001);
  refused(&d, 1000000);
  refused(&d, SIZE_MAX);
  /* a split at the last byte in hand is fine; a second split is refused, wherever it is */
  assert_int_equal(crpc__decoder_split(&d, 1000), 0);
  assert_int_equal(crpc__decoder_missing(&d), s.end[1] - s.start[1] - 1000);
  refused(&d, 1000);
  refused(&d, 500);
  refused(&d, CRPC__HDR_LEN);
  assert_int_equal(feed(&d, &r, &s, s.start[1] + 1000, s.len - s.start[1] - 1000), 0);
  assert_int_equal(r.n, 3);
  check_got(&r, 0, &s, 0, 0);
  check_got(&r, 1, &s, 1, 1000);
  check_got(&r, 2, &s, 2, 0);
  /* the split frame is done: nothing partial any more */
  refused(&d, CRPC__HDR_LEN);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* While paused (a frame callback returned CRPC__DEC_PAUSE), even with a partial frame in the
 * kept remainder; while skipping an oversized frame; while awaiting the preface. */
static void split_refused_paused_skipping_preface(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 40);
  s_msg(&s, 3, 200000);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  r.pause_on = 1;
  size_t cut = s.start[1] + 5000;
  assert_int_equal(feed(&d, &r, &s, 0, cut), CRPC__DEC_PAUSE);
  assert_int_equal(r.n, 1);
  assert_int_equal(crpc__decoder_missing(&d), 0);
  for (size_t at = CRPC__HDR_LEN; at < d.len; at += 997) refused(&d, at);
  refused(&d, d.len);
  /* resumed: the partial frame is in the buffer and can be split */
  r.pause_on = 0;
  assert_int_equal(crpc__decoder_feed(&d, NULL, 0, on_frame, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(crpc__decoder_missing(&d), s.len - cut);
  assert_int_equal(crpc__decoder_split(&d, 3000), 0);
  assert_int_equal(feed(&d, &r, &s, cut, s.len - cut), 0);
  assert_int_equal(r.n, 2);
  check_got(&r, 1, &s, 1, 3000);
  crpc__decoder_free(&d);
  rec_free(&r);

  /* an oversized frame being skipped */
  crpc__decoder_init(&d, 1000, 0);
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, s.start[1], 3000), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.g[0].f.oversized, 1);
  assert_true(d.skip > 0);
  for (size_t at = 0; at < 40; at += 3) refused(&d, at);
  crpc__decoder_free(&d);
  rec_free(&r);

  /* the preface not yet complete, then complete with a partial frame behind it */
  stream p = {0};
  uint8_t pre[CRPC__PREFACE_LEN];
  crpc__preface_encode(pre);
  s_raw(&p, pre, sizeof pre);
  size_t f0 = s_msg(&p, 1, 100000);
  crpc__decoder_init(&d, MAXP, 1);
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &p, 0, 5), 0);
  for (size_t at = 0; at < 10; at++) refused(&d, at);
  assert_int_equal(feed(&d, &r, &p, 5, f0 + 2000 - 5), 0);
  assert_int_equal(crpc__decoder_split(&d, 1500), 0);
  assert_int_equal(feed(&d, &r, &p, f0 + 2000, p.len - f0 - 2000), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &p, 0, 1500);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&p);
  s_free(&s);
}

/* Out of memory: the split is refused and changes nothing; the frame then arrives whole. */
static void split_refused_out_of_memory(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 150000);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, 0, 4000), 0);
  fa_arm(FA_ANY, 1);
  refused(&d, 2000);
  fa_disarm();
  assert_true(fa_injected());
  assert_int_equal(feed(&d, &r, &s, 4000, s.len - 4000), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 0);
  crpc__decoder_free(&d);
  rec_free(&r);

  /* split fine, then growing the tail fails: the feed says so, and nothing leaks */
  crpc__decoder_init(&d, MAXP, 0);
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, 0, 4000), 0);
  assert_int_equal(crpc__decoder_split(&d, 2000), 0);
  size_t missing = crpc__decoder_missing(&d);
  uint8_t *c = malloc(s.len - 4000);
  assert_non_null(c);
  memcpy(c, s.b + 4000, s.len - 4000);
  fa_arm(FA_ANY, 1);
  assert_int_equal(crpc__decoder_feed(&d, c, s.len - 4000, on_frame, &r), CRPC__FR_NOMEM);
  assert_true(fa_injected());
  assert_int_equal(crpc__decoder_missing(&d), missing);
  /* ... and a direct read's space cannot be offered either */
  size_t n = 12345;
  fa_arm(FA_ANY, 1);
  assert_null(crpc__decoder_space_ready(&d, 1, missing, &n));
  assert_int_equal(n, 0);
  fa_disarm();
  free(c);
  assert_int_equal(r.n, 0);
  crpc__decoder_free(&d); /* the tail goes with it (LSan) */
  s_free(&s);
}

/* ---- after a split ---------------------------------------------------------------------------*/

/* Direct reads into the tail: space grows with what arrived (or at once with `ready`), never past
 * the frame's end; missing counts down; the last commit delivers the frame. */
static void split_commit(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 2000000);
  s_msg(&s, 2, 100);
  size_t flen = s.end[0];
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, 0, 5000), 0);
  size_t missing = crpc__decoder_missing(&d);
  assert_int_equal(missing, flen - 5000);
  assert_int_equal(crpc__decoder_split(&d, 3000), 0);
  assert_int_equal(crpc__decoder_missing(&d), missing); /* the 2000 bytes moved to the tail count */
  size_t at = 5000;  /* frame bytes in hand */
  int steps = 0;
  size_t n;
  /* without `ready`: at most doubling what the tail holds (plus a first block) */
  while (at < flen / 2) {
    uint8_t *p = crpc__decoder_space(&d, 1, &n);
    assert_non_null(p);
    assert_true(n > 0);
    assert_true(n <= flen - at);
    size_t tail_have = at - 3000;
    assert_true(tail_have + n <= 2 * tail_have + 65536);
    /* the space is in the tail block, not in the decoder's buffer */
    uintptr_t pp = (uintptr_t)p, b0 = (uintptr_t)d.buf;
    assert_false(d.buf && pp >= b0 && pp < b0 + d.cap);
    assert_ptr_equal(p, d.tail + tail_have);
    assert_true(d.tail_cap <= flen - 3000); /* the block never outgrows the tail */
    memcpy(p, s.b + at, n); /* all of it: ASan checks the space is really there */
    at += n;
    assert_int_equal(crpc__decoder_commit(&d, n, on_frame, &r), 0);
    assert_int_equal(crpc__decoder_missing(&d), flen - at);
    steps++;
  }
  assert_true(steps > 2);
  /* with `ready`: room for what is ready at once */
  uint8_t *p = crpc__decoder_space_ready(&d, 1, 300000, &n);
  assert_non_null(p);
  assert_true(n >= 300000 && n <= flen - at);
  memcpy(p, s.b + at, 1000); /* a short read */
  at += 1000;
  assert_int_equal(crpc__decoder_commit(&d, 1000, on_frame, &r), 0);
  assert_int_equal(crpc__decoder_missing(&d), flen - at);
  /* `ready` past the frame's end: room up to the end, no more */
  p = crpc__decoder_space_ready(&d, 1, SIZE_MAX, &n);
  assert_non_null(p);
  assert_int_equal(n, flen - at);
  assert_int_equal(d.tail_cap, flen - 3000);
  memcpy(p, s.b + at, n - 1);
  at += n - 1;
  assert_int_equal(crpc__decoder_commit(&d, n - 1, on_frame, &r), 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(crpc__decoder_missing(&d), 1);
  p = crpc__decoder_space(&d, 1, &n);
  assert_non_null(p);
  assert_int_equal(n, 1);
  *p = s.b[at];
  assert_int_equal(crpc__decoder_commit(&d, 1, on_frame, &r), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 3000);
  assert_int_equal(crpc__decoder_missing(&d), 0);
  assert_null(d.tail);
  assert_null(crpc__decoder_space(&d, 1, &n));
  /* the next frame as usual */
  assert_int_equal(feed(&d, &r, &s, s.start[1], s.len - s.start[1]), 0);
  assert_int_equal(r.n, 2);
  check_got(&r, 1, &s, 1, 0);
  assert_int_equal(d.len, 0);
  crpc__decoder_trim(&d);
  assert_null(d.buf);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* The rest fed in many small pieces (and taken by the callback, and not). */
static void split_feed_small_pieces(void **state) {
  (void)state;
  for (int take = 0; take < 2; take++) {
    stream s = {0};
    s_msg(&s, 1, 70000);
    s_msg(&s, 2, 10);
    crpc__decoder d;
    crpc__decoder_init(&d, MAXP, 0);
    rec r;
    rec_init(&r, &d);
    r.take = take;
    assert_int_equal(feed(&d, &r, &s, 0, 777), 0);
    assert_int_equal(crpc__decoder_split(&d, 700), 0);
    size_t at = 777, k = 0;
    while (at < s.end[0]) {
      size_t piece = 1 + (k++ * 37) % 211;
      if (piece > s.end[0] - at) piece = s.end[0] - at;
      assert_int_equal(r.n, 0);
      assert_int_equal(feed(&d, &r, &s, at, piece), 0);
      at += piece;
      assert_int_equal(crpc__decoder_missing(&d), s.end[0] - at);
    }
    assert_int_equal(r.n, 1);
    check_got(&r, 0, &s, 0, 700);
    if (take) assert_non_null(r.g[0].taken);
    /* a feed of nothing changes nothing */
    assert_int_equal(crpc__decoder_feed(&d, NULL, 0, on_frame, &r), 0);
    assert_int_equal(r.n, 1);
    for (; at < s.len; at++) assert_int_equal(feed(&d, &r, &s, at, 1), 0);
    assert_int_equal(r.n, 2);
    check_got(&r, 1, &s, 1, 0);
    crpc__decoder_free(&d);
    rec_free(&r);
    s_free(&s);
  }
}

/* The rest of the split frame arrives in one feed with the frames behind it: small ones, a large
 * one whole, and the start of one more, which is split in turn. */
static void split_rest_with_next_frames(void **state) {
  (void)state;
  for (int take = 0; take < 2; take++) {
    stream s = {0};
    s_msg(&s, 1, 300000);                           /* 0: split */
    s_msg(&s, 3, 5);                                /* 1 */
    s_frame(&s, CRPC__F_STATUS, CRPC__FL_MESSAGE, 5, 90000); /* 2: whole, from the feed */
    s_frame(&s, CRPC__F_PING, 0, 0, 8);             /* 3 */
    s_msg(&s, 7, 0);                                /* 4: empty */
    s_msg(&s, 9, 250000);                           /* 5: partial, then split */
    s_msg(&s, 11, 64);                              /* 6 */
    crpc__decoder d;
    crpc__decoder_init(&d, MAXP, 0);
    rec r;
    rec_init(&r, &d);
    r.take = take;
    assert_int_equal(feed(&d, &r, &s, 0, 100000), 0);
    assert_int_equal(crpc__decoder_split(&d, 99999), 0);
    size_t cut = s.start[5] + 4000;
    assert_int_equal(feed(&d, &r, &s, 100000, cut - 100000), 0);
    assert_int_equal(r.n, 5);
    check_got(&r, 0, &s, 0, 99999);
    for (int i = 1; i < 5; i++) check_got(&r, i, &s, i, 0);
    assert_null(d.tail);
    assert_int_equal(crpc__decoder_missing(&d), s.end[5] - cut);
    assert_int_equal(crpc__decoder_split(&d, CRPC__HDR_LEN), 0); /* head: the header alone */
    assert_int_equal(feed(&d, &r, &s, cut, s.len - cut), 0);
    assert_int_equal(r.n, 7);
    check_got(&r, 5, &s, 5, CRPC__HDR_LEN);
    check_got(&r, 6, &s, 6, 0);
    assert_int_equal(d.len, 0);
    crpc__decoder_free(&d);
    rec_free(&r);
    s_free(&s);
  }
}

/* A frame small enough that its whole tail fits the first block, split at its last byte in hand
 * with nothing in the tail yet, and at the frame's last byte. */
static void split_edges(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 3000);
  s_msg(&s, 3, 3000);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  r.take = 1;
  assert_int_equal(feed(&d, &r, &s, 0, 100), 0);
  assert_int_equal(crpc__decoder_split(&d, 100), 0); /* an empty tail so far */
  assert_int_equal(crpc__decoder_missing(&d), s.end[0] - 100);
  size_t n;
  uint8_t *p = crpc__decoder_space(&d, 1, &n);
  assert_non_null(p);
  assert_int_equal(n, s.end[0] - 100); /* the whole (small) tail, no more */
  memcpy(p, s.b + 100, n);
  assert_int_equal(crpc__decoder_commit(&d, n, on_frame, &r), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 100);
  /* the next: all but its last byte in hand, split right there */
  size_t last = s.end[1] - 1;
  assert_int_equal(feed(&d, &r, &s, s.start[1], last - s.start[1]), 0);
  assert_int_equal(crpc__decoder_missing(&d), 1);
  assert_int_equal(crpc__decoder_split(&d, last - s.start[1]), 0);
  assert_int_equal(crpc__decoder_missing(&d), 1);
  assert_int_equal(feed(&d, &r, &s, last, 1), 0);
  assert_int_equal(r.n, 2);
  check_got(&r, 1, &s, 1, last - s.start[1]);
  assert_int_equal(r.g[1].f.length - r.g[1].f.head_len, 1);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* The callback pauses on the split frame: completed by a feed with more frames behind it, and by
 * a commit. The frames behind wait for the resume; the tail is freed (or kept when taken). */
static void split_pause(void **state) {
  (void)state;
  for (int take = 0; take < 2; take++) {
    stream s = {0};
    s_msg(&s, 1, 120000);
    s_msg(&s, 3, 20);
    s_msg(&s, 5, 80000);
    s_msg(&s, 7, 90000);
    crpc__decoder d;
    crpc__decoder_init(&d, MAXP, 0);
    rec r;
    rec_init(&r, &d);
    r.take = take;
    r.pause_on_split = 1;
    assert_int_equal(feed(&d, &r, &s, 0, 10000), 0);
    assert_int_equal(crpc__decoder_split(&d, 6000), 0);
    size_t cut = s.start[3] + 500;
    assert_int_equal(feed(&d, &r, &s, 10000, cut - 10000), CRPC__DEC_PAUSE);
    assert_int_equal(r.n, 1);
    check_got(&r, 0, &s, 0, 6000);
    assert_null(d.tail);
    assert_int_equal(crpc__decoder_missing(&d), 0); /* paused */
    refused(&d, CRPC__HDR_LEN);
    size_t n;
    assert_null(crpc__decoder_space(&d, 1, &n));
    /* resume: frames 1 and 2 from the kept bytes, frame 3 partial again */
    assert_int_equal(crpc__decoder_feed(&d, NULL, 0, on_frame, &r), 0);
    assert_int_equal(r.n, 3);
    check_got(&r, 1, &s, 1, 0);
    check_got(&r, 2, &s, 2, 0);
    assert_int_equal(crpc__decoder_missing(&d), s.end[3] - cut);
    /* frame 3 split and completed by commits; the callback pauses again */
    assert_int_equal(crpc__decoder_split(&d, 400), 0);
    size_t at = cut;
    while (at < s.end[3]) {
      uint8_t *p = crpc__decoder_space(&d, 1, &n);
      assert_non_null(p);
      memcpy(p, s.b + at, n);
      at += n;
      int rc = crpc__decoder_commit(&d, n, on_frame, &r);
      assert_int_equal(rc, at == s.end[3] ? CRPC__DEC_PAUSE : 0);
    }
    assert_int_equal(r.n, 4);
    check_got(&r, 3, &s, 3, 400);
    assert_int_equal(crpc__decoder_missing(&d), 0);
    assert_int_equal(crpc__decoder_feed(&d, NULL, 0, on_frame, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(d.len, 0);
    assert_int_equal(d.paused, 0);
    crpc__decoder_free(&d);
    rec_free(&r);
    s_free(&s);
  }
}

/* A callback failing on the split frame: its value comes back, the tail is freed. */
static void split_callback_fails(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 90000);
  s_msg(&s, 3, 20);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  r.fail_on_split = 1;
  assert_int_equal(feed(&d, &r, &s, 0, 3000), 0);
  assert_int_equal(crpc__decoder_split(&d, 2500), 0);
  assert_int_equal(feed(&d, &r, &s, 3000, s.len - 3000), -77);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 2500);
  assert_null(d.tail);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* crpc__decoder_take_tail outside the callback, on a stale frame: NULL. */
static void take_tail_outside_callback(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 70000);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  rec r;
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, 0, 1000), 0);
  assert_int_equal(crpc__decoder_split(&d, 900), 0);
  crpc__frame none;
  memset(&none, 0, sizeof none);
  assert_null(crpc__decoder_take_tail(&d, &none)); /* no tail on that frame */
  assert_int_equal(feed(&d, &r, &s, 1000, s.len - 1000), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 900);
  assert_null(crpc__decoder_take_tail(&d, &r.g[0].f)); /* delivered and freed: not ours */
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* The decoder freed while a frame is split: the tail goes with it (LSan); the decoder can be
 * initialised and used again. */
static void free_mid_split(void **state) {
  (void)state;
  stream s = {0};
  s_msg(&s, 1, 500000);
  crpc__decoder d;
  rec r;
  for (int round = 0; round < 3; round++) {
    crpc__decoder_init(&d, MAXP, 0);
    rec_init(&r, &d);
    assert_int_equal(feed(&d, &r, &s, 0, 20000), 0);
    assert_int_equal(crpc__decoder_split(&d, round == 0 ? 20000 : 15000), 0);
    if (round == 2) assert_int_equal(feed(&d, &r, &s, 20000, 200000), 0);
    crpc__decoder_trim(&d); /* not idle: keeps everything */
    assert_non_null(d.tail);
    crpc__decoder_free(&d);
    assert_null(d.tail);
    assert_int_equal(crpc__decoder_missing(&d), 0);
    assert_int_equal(r.n, 0);
  }
  crpc__decoder_init(&d, MAXP, 0);
  rec_init(&r, &d);
  assert_int_equal(feed(&d, &r, &s, 0, 30000), 0);
  assert_int_equal(crpc__decoder_split(&d, 29000), 0);
  assert_int_equal(feed(&d, &r, &s, 30000, s.len - 30000), 0);
  assert_int_equal(r.n, 1);
  check_got(&r, 0, &s, 0, 29000);
  crpc__decoder_free(&d);
  rec_free(&r);
  s_free(&s);
}

/* ---- STATUS frames: crpc__status_decode reads the head only ----------------------------------*/

typedef struct st_rec {
  crpc__decoder *d;
  int n, rc;
  crpc__status_hdr st;
  size_t msg_off;   /* st.message - f->payload */
  uint32_t head_len, length;
} st_rec;

static int st_cb(void *ud, const crpc__frame *f) {
  st_rec *r = ud;
  r->n++;
  r->rc = crpc__status_decode(f, &r->st);
  r->msg_off = r->st.message ? (size_t)(r->st.message - f->payload) : 0;
  r->head_len = f->head_len;
  r->length = f->length;
  return 0;
}

static void status_split(void **state) {
  (void)state;
  static const struct {
    const char *text;
    size_t md;
  } shapes[] = {{"", 0}, {"a text", 0}, {"", 40}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    uint8_t md[64];
    uint8_t *q = md;
    if (shapes[k].md) {
      q = crpc__md_entry_encode(q, "k", 1, (const uint8_t *)"0123456789012345678901234567890", 31);
    }
    size_t md_len = (size_t)(q - md);
    size_t tl = strlen(shapes[k].text);
    size_t fixed = crpc__status_fixed_size(tl, md_len, 0);
    size_t msg_len = 100000;
    size_t plen = fixed + msg_len;
    uint8_t *fr = malloc(CRPC__HDR_LEN + plen);
    assert_non_null(fr);
    crpc__hdr_encode(fr, CRPC__F_STATUS, CRPC__FL_MESSAGE, 7, (uint32_t)plen);
    uint8_t *m = crpc__status_fixed_encode(fr + CRPC__HDR_LEN, 0, shapes[k].text, (uint32_t)tl, md,
                                           (uint32_t)md_len, NULL, 0);
    assert_ptr_equal(m, fr + CRPC__HDR_LEN + fixed);
    for (size_t i = 0; i < msg_len; i++) m[i] = pat(i, 9);
    size_t in_msg[] = {1, 50, 4000};
    for (size_t j = 0; j < sizeof in_msg / sizeof in_msg[0]; j++) {
      crpc__decoder d;
      crpc__decoder_init(&d, MAXP, 0);
      st_rec r = {&d, 0, 0, {0}, 0, 0, 0};
      size_t at = CRPC__HDR_LEN + fixed + in_msg[j];
      assert_int_equal(crpc__decoder_feed(&d, fr, at + 100, st_cb, &r), 0);
      assert_int_equal(crpc__decoder_split(&d, at), 0);
      assert_int_equal(crpc__decoder_feed(&d, fr + at + 100, CRPC__HDR_LEN + plen - at - 100,
                                          st_cb, &r),
                       0);
      assert_int_equal(r.n, 1);
      assert_int_equal(r.rc, 0);
      assert_int_equal(r.st.code, 0);
      assert_int_equal(r.st.text_len, tl);
      assert_int_equal(r.st.metadata_len, md_len);
      assert_int_equal(r.head_len, at - CRPC__HDR_LEN);
      /* the message: the part in the head, starting after the fixed fields */
      assert_int_equal(r.msg_off, fixed);
      assert_int_equal(r.st.message_len, in_msg[j]);
      crpc__decoder_free(&d);
    }
    free(fr);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(split_refused),
      cmocka_unit_test(split_refused_paused_skipping_preface),
      cmocka_unit_test(split_refused_out_of_memory),
      cmocka_unit_test(split_commit),
      cmocka_unit_test(split_feed_small_pieces),
      cmocka_unit_test(split_rest_with_next_frames),
      cmocka_unit_test(split_edges),
      cmocka_unit_test(split_pause),
      cmocka_unit_test(split_callback_fails),
      cmocka_unit_test(take_tail_outside_callback),
      cmocka_unit_test(free_mid_split),
      cmocka_unit_test(status_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
