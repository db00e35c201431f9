/* Fuzz target: the streaming frame decoder and every payload decoder (runtime/src/wire/frame.c).
 *
 * Input layout (so that the fuzzer controls the cuts as well as the bytes):
 *   byte 0      config: bit 0 want_preface; bits 1-2 pause mode (0 never, 1 every frame, 2 every
 *               third frame, 3 every frame and feed more while paused); bit 3 trim after feeds
 *   byte 1      max_payload, an index into max_table[] (low 3 bits)
 *   byte 2      number of cuts n (low 4 bits)
 *   n bytes     feed sizes (0 = an empty feed); the rest of the stream goes in one last feed
 *   rest        the byte stream
 *
 * The stream is decoded three ways: whole, at the cuts (with pauses), and byte by byte when it is
 * short. All three must deliver the same frames (type, flags, id, length, oversized, payload
 * bytes) and end with the same result. Each feed is an exact-size heap copy, so ASan catches a
 * read past it. Invariants checked on every frame and after every feed:
 *  - a frame within the type's limit has its payload (length bytes, inside the fed bytes or the
 *    decoder's buffer); an oversized one has none and a length above the limit;
 *  - the decoder's buffer never exceeds HDR_LEN + the largest limit unless a pause kept bytes, and
 *    it is never sized from a declared length (cap <= max(64, 2 * bytes actually held));
 *  - every payload decoder either fails with CRPC__FR_PROTO or returns fields that lie inside the
 *    payload and add up to its length, and re-encoding them gives the payload back. */
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"
#include "fuzz.h"

static const uint32_t max_table[8] = {0, 1, 11, 64, 1000, 16384, 70000, UINT32_MAX};

#define MAX_FRAMES 4096

typedef struct seen {
  uint32_t length, call_id;
  uint8_t type, flags;
  int oversized;
  uint64_t hash;
} seen;

typedef struct run {
  crpc__decoder dec;
  seen frames[MAX_FRAMES];
  size_t n;
  int pause_mode;
  const uint8_t *feed; /* current feed, to tell zero-copy frames from buffered ones */
  size_t feed_len;
} run;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static uint32_t type_limit(const crpc__decoder *d, uint8_t type) {
  if (type == CRPC__F_CALL || type == CRPC__F_MESSAGE || type == CRPC__F_STATUS)
    return d->max_payload;
  return CRPC__MAX_CONTROL_PAYLOAD;
}

static int inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len) {
  if (n == 0)
    return 1;
  return p != NULL && p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

/* ---- payload decoders ----------------------------------------------------------------------*/

static void check_md_block(const uint8_t *block, uint32_t len) {
  uint32_t pos = 0;
  crpc__md_entry e;
  int rc;
  size_t total = 0;
  while ((rc = crpc__md_next(block, len, &pos, &e)) == 1) {
    FUZZ_CHECK(e.key_len >= 1 && e.key_len <= 255);
    FUZZ_CHECK(inside((const uint8_t *)e.key, e.key_len, block, len));
    FUZZ_CHECK(inside(e.value, e.value_len, block, len));
    FUZZ_CHECK(pos <= len);
    total += crpc__md_entry_size(e.key_len, e.value_len);
    /* Re-encoding the entry gives the same bytes. */
    size_t sz = crpc__md_entry_size(e.key_len, e.value_len);
    uint8_t *tmp = malloc(sz);
    FUZZ_CHECK(tmp != NULL);
    FUZZ_CHECK(crpc__md_entry_encode(tmp, e.key, e.key_len, e.value, e.value_len) == tmp + sz);
    FUZZ_CHECK(memcmp(tmp, (const uint8_t *)e.key - 2, sz) == 0);
    free(tmp);
  }
  /* md blocks inside an accepted CALL/STATUS were validated, so the walk must end cleanly. */
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(total == len);
}

static void check_call(const crpc__frame *f) {
  crpc__call_hdr h;
  int rc = crpc__call_decode(f, &h);
  if (rc != 0) {
    FUZZ_CHECK(rc == CRPC__FR_PROTO);
    return;
  }
  const uint8_t *base = f->payload;
  FUZZ_CHECK(h.method_len >= 1 && h.method_len <= CRPC__MAX_METHOD_LEN);
  FUZZ_CHECK(inside((const uint8_t *)h.method, h.method_len, base, f->length));
  FUZZ_CHECK(inside(h.metadata, h.metadata_len, base, f->length));
  size_t fixed = crpc__call_fixed_size(h.method_len, h.metadata_len);
  if (f->flags & CRPC__FL_MESSAGE) {
    FUZZ_CHECK(h.message != NULL || h.message_len == 0);
    FUZZ_CHECK(fixed + h.message_len == f->length);
    FUZZ_CHECK(h.message_len == 0 || h.message == base + fixed);
  } else {
    FUZZ_CHECK(h.message == NULL && h.message_len == 0);
    FUZZ_CHECK(fixed == f->length);
  }
  uint8_t *tmp = malloc(fixed);
  FUZZ_CHECK(tmp != NULL);
  FUZZ_CHECK(crpc__call_fixed_encode(tmp, h.method, h.method_len, h.timeout_ms, h.metadata,
                                     h.metadata_len) == tmp + fixed);
  FUZZ_CHECK(memcmp(tmp, base, fixed) == 0);
  free(tmp);
  check_md_block(h.metadata, h.metadata_len);
}

static void check_status(const crpc__frame *f) {
  crpc__status_hdr h;
  int rc = crpc__status_decode(f, &h);
  if (rc != 0) {
    FUZZ_CHECK(rc == CRPC__FR_PROTO);
    return;
  }
  const uint8_t *base = f->payload;
  FUZZ_CHECK(inside((const uint8_t *)h.text, h.text_len, base, f->length));
  FUZZ_CHECK(inside(h.metadata, h.metadata_len, base, f->length));
  FUZZ_CHECK(inside(h.details, h.details_len, base, f->length));
  size_t fixed = crpc__status_fixed_size(h.text_len, h.metadata_len, h.details_len);
  if (f->flags & CRPC__FL_MESSAGE)
    FUZZ_CHECK(fixed + h.message_len == f->length);
  else
    FUZZ_CHECK(h.message == NULL && h.message_len == 0 && fixed == f->length);
  uint8_t *tmp = malloc(fixed);
  FUZZ_CHECK(tmp != NULL);
  FUZZ_CHECK(crpc__status_fixed_encode(tmp, h.code, h.text, h.text_len, h.metadata,
                                       h.metadata_len, h.details,
                                       h.details_len) == tmp + fixed);
  FUZZ_CHECK(memcmp(tmp, base, fixed) == 0);
  free(tmp);
  check_md_block(h.metadata, h.metadata_len);
}

static void check_goaway(const crpc__frame *f) {
  crpc__goaway g;
  int rc = crpc__goaway_decode(f, &g);
  if (rc != 0) {
    FUZZ_CHECK(rc == CRPC__FR_PROTO);
    return;
  }
  size_t sz = crpc__goaway_size(g.text_len);
  FUZZ_CHECK(sz == f->length);
  FUZZ_CHECK(inside((const uint8_t *)g.text, g.text_len, f->payload, f->length));
  uint8_t *tmp = malloc(sz);
  FUZZ_CHECK(tmp != NULL);
  FUZZ_CHECK(crpc__goaway_encode(tmp, g.last_call_id, g.code, g.text, g.text_len) == tmp + sz);
  FUZZ_CHECK(memcmp(tmp, f->payload, sz) == 0);
  free(tmp);
}

static void check_window(const crpc__frame *f) {
  uint32_t inc = 0;
  int rc = crpc__window_decode(f, &inc);
  if (rc != 0) {
    FUZZ_CHECK(rc == CRPC__FR_PROTO);
    return;
  }
  FUZZ_CHECK(f->length == 4 && inc > 0 && inc == crpc__be32_get(f->payload));
}

/* Every payload decoder on every frame, whatever its type: none may misbehave on any bytes. */
static void check_payloads(const crpc__frame *f) {
  check_call(f);
  check_status(f);
  check_goaway(f);
  check_window(f);
  int rc = crpc__md_next(f->payload, f->length, &(uint32_t){0}, &(crpc__md_entry){0});
  FUZZ_CHECK(rc == 0 || rc == 1 || rc == CRPC__FR_PROTO);
  if (f->type == CRPC__F_HEADERS && f->payload != NULL) {
    uint32_t pos = 0;
    crpc__md_entry e;
    while ((rc = crpc__md_next(f->payload, f->length, &pos, &e)) == 1)
      FUZZ_CHECK(pos <= f->length);
    FUZZ_CHECK(rc == 0 || rc == CRPC__FR_PROTO);
  }
}

/* ---- the streaming decoder ------------------------------------------------------------------*/

static int on_frame(void *ud, const crpc__frame *f) {
  run *r = ud;
  uint32_t limit = type_limit(&r->dec, f->type);
  if (f->oversized) {
    FUZZ_CHECK(f->payload == NULL);
    FUZZ_CHECK(f->length > limit);
  } else {
    FUZZ_CHECK(f->length <= limit);
    FUZZ_CHECK(f->length == 0 || f->payload != NULL);
    /* Zero copy or assembled: the payload lies in the current feed or in the decoder's buffer. */
    FUZZ_CHECK(inside(f->payload, f->length, r->feed, r->feed_len) ||
               inside(f->payload, f->length, r->dec.buf, r->dec.len));
    check_payloads(f);
  }
  FUZZ_CHECK(r->n < MAX_FRAMES);
  seen *s = &r->frames[r->n++];
  s->length = f->length;
  s->call_id = f->call_id;
  s->type = f->type;
  s->flags = f->flags;
  s->oversized = f->oversized;
  s->hash = f->payload != NULL ? fnv(f->payload, f->length) : 0;
  switch (r->pause_mode) {
  case 1:
  case 3:
    return CRPC__DEC_PAUSE;
  case 2:
    return r->n % 3 == 0 ? CRPC__DEC_PAUSE : 0;
  default:
    return 0;
  }
}

typedef struct outcome {
  int rc; /* first negative result, or 0 */
} outcome;

/* Bound of the buffer for a decoder that was never paused. */
static size_t unpaused_bound(const crpc__decoder *d) {
  size_t lim = d->max_payload > CRPC__MAX_CONTROL_PAYLOAD ? d->max_payload
                                                          : CRPC__MAX_CONTROL_PAYLOAD;
  size_t b = (size_t)CRPC__HDR_LEN + lim;
  return b < 64 ? 64 : b;
}

/* Feeds one piece as an exact-size heap copy; returns the feed's result. */
static int feed_one(run *r, const uint8_t *p, size_t n, size_t *peak, int trim) {
  uint8_t *copy = n ? malloc(n) : NULL;
  if (n)
    memcpy(copy, p, n);
  size_t before = r->dec.len;
  r->feed = copy;
  r->feed_len = n;
  int rc = crpc__decoder_feed(&r->dec, copy, n, on_frame, r);
  r->feed = NULL;
  r->feed_len = 0;
  free(copy);
  if (before + n > *peak)
    *peak = before + n;
  FUZZ_CHECK(rc == 0 || rc == CRPC__DEC_PAUSE || rc == CRPC__FR_BADMAGIC ||
             rc == CRPC__FR_VERSION || rc == CRPC__FR_PROTO);
  FUZZ_CHECK(r->dec.len <= r->dec.cap);
  FUZZ_CHECK((r->dec.buf == NULL) == (r->dec.cap == 0));
  /* Sized by bytes held, never by a declared length. */
  FUZZ_CHECK(r->dec.cap <= 64 || r->dec.cap <= 2 * *peak);
  if (r->pause_mode == 0)
    FUZZ_CHECK(r->dec.cap <= unpaused_bound(&r->dec));
  if (rc == 0 && trim) {
    crpc__decoder_trim(&r->dec);
    if (r->dec.len == 0)
      FUZZ_CHECK(r->dec.buf == NULL && r->dec.cap == 0);
  }
  return rc;
}

/* Resumes a paused decoder until it runs dry or fails. */
static int drain(run *r, int rc, size_t *peak, int trim) {
  size_t guard = 0;
  while (rc == CRPC__DEC_PAUSE) {
    FUZZ_CHECK(guard++ <= MAX_FRAMES);
    rc = feed_one(r, NULL, 0, peak, trim);
  }
  return rc;
}

/* Decodes `stream` fed in the pieces given by cuts[] (then the rest whole). */
static outcome decode(run *r, uint32_t max_payload, int want_preface, int pause_mode, int trim,
                      const uint8_t *cuts, size_t ncuts, const uint8_t *stream, size_t len) {
  outcome o = {0};
  size_t peak = 0;
  crpc__decoder_init(&r->dec, max_payload, want_preface);
  r->n = 0;
  r->pause_mode = pause_mode;
  size_t off = 0;
  int rc = 0;
  for (size_t i = 0; i <= ncuts && rc >= 0; i++) {
    size_t want = i < ncuts ? cuts[i] : len - off;
    size_t n = want < len - off ? want : len - off;
    rc = feed_one(r, stream + off, n, &peak, trim);
    off += n;
    /* Pause mode 3 feeds on while paused (the bytes queue behind the unread ones); the others
     * resume first. */
    if (rc == CRPC__DEC_PAUSE && (pause_mode != 3 || i == ncuts))
      rc = drain(r, rc, &peak, trim);
  }
  rc = drain(r, rc, &peak, trim);
  o.rc = rc < 0 ? rc : 0;
  crpc__decoder_free(&r->dec);
  FUZZ_CHECK(r->dec.buf == NULL && r->dec.len == 0 && r->dec.cap == 0);
  return o;
}

static void same(const run *a, outcome oa, const run *b, outcome ob) {
  FUZZ_CHECK(oa.rc == ob.rc);
  FUZZ_CHECK(a->n == b->n);
  for (size_t i = 0; i < a->n; i++)
    FUZZ_CHECK(memcmp(&a->frames[i], &b->frames[i], sizeof a->frames[i]) == 0);
}

static run runs[3]; /* large; static so that the stack stays small */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  int want_preface = data[0] & 1;
  int pause_mode = (data[0] >> 1) & 3;
  int trim = (data[0] >> 3) & 1;
  uint32_t max_payload = max_table[data[1] & 7];
  size_t ncuts = data[2] & 15;
  if (size - 3 < ncuts)
    return 0;
  const uint8_t *cuts = data + 3;
  const uint8_t *stream = cuts + ncuts;
  size_t len = size - 3 - ncuts;

  memset(runs, 0, sizeof runs);
  /* seen{} has padding: zeroed above, and fields are assigned one by one, so memcmp is exact. */
  outcome whole = decode(&runs[0], max_payload, want_preface, 0, 0, NULL, 0, stream, len);
  outcome cut = decode(&runs[1], max_payload, want_preface, pause_mode, trim, cuts, ncuts,
                       stream, len);
  same(&runs[0], whole, &runs[1], cut);
  if (len <= 512) {
    static uint8_t ones[512];
    memset(ones, 1, sizeof ones);
    outcome bytes = decode(&runs[2], max_payload, want_preface, 0, 1, ones,
                           len < sizeof ones ? len : sizeof ones, stream, len);
    same(&runs[0], whole, &runs[2], bytes);
  }
  return 0;
}

void fuzz_teardown(void) {}
