/* Frame codec: see frame.h for the contract and runtime/PROTOCOL.md for the wire format.
 *
 * Two rules shape everything here:
 *  - every length comes from an untrusted peer, so it is compared with the bytes that are really
 *    there (payload parsers) or with the configured limit (streaming decoder) before it is used;
 *    sums are done in size_t/uint64_t after such a check, so none can wrap;
 *  - the decoder copies only what it must: whole frames are handed out straight from the caller's
 *    bytes, and only a frame cut by a read boundary is assembled in the decoder's buffer. */
#include "wire/frame.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t preface_magic[6] = {'C', 'R', 'P', 'C', '\r', '\n'};

/* ---- Preface and header ----------------------------------------------------------------------*/

void crpc__preface_encode(uint8_t *out) {
  memcpy(out, preface_magic, sizeof preface_magic);
  out[6] = CRPC__PROTO_MAJOR;
  out[7] = CRPC__PROTO_MINOR;
}

int crpc__preface_decode(const uint8_t *in, uint8_t *minor) {
  if (memcmp(in, preface_magic, sizeof preface_magic) != 0)
    return CRPC__FR_BADMAGIC;
  if (in[6] != CRPC__PROTO_MAJOR)
    return CRPC__FR_VERSION;
  if (minor != NULL)
    *minor = in[7];
  return CRPC__FR_OK;
}

void crpc__hdr_encode(uint8_t *out, uint8_t type, uint8_t flags, uint32_t call_id,
                      uint32_t length) {
  crpc__be32_put(out, length);
  out[4] = type;
  out[5] = flags;
  crpc__be16_put(out + 6, 0);
  crpc__be32_put(out + 8, call_id);
}

int crpc__hdr_decode(const uint8_t *in, crpc__frame *f) {
  /* Reserved bits must be zero so that a later version can give them a meaning. */
  if (in[6] != 0 || in[7] != 0)
    return CRPC__FR_PROTO;
  f->length = crpc__be32_get(in);
  f->type = in[4];
  f->flags = in[5];
  f->call_id = crpc__be32_get(in + 8);
  f->payload = NULL;
  f->oversized = 0;
  f->tail = NULL;
  f->head_len = 0;
  return CRPC__FR_OK;
}

/* ---- Bounds-checked reader over one payload ---------------------------------------------------*/

typedef struct reader {
  const uint8_t *p;
  size_t left;
} reader;

/* A payload with no bytes may legitimately have a NULL pointer; one that was never received
 * (oversized) has length > 0 and a NULL pointer and cannot be parsed. */
static int reader_init(reader *r, const crpc__frame *f) {
  if (f->payload == NULL && f->length > 0)
    return CRPC__FR_PROTO;
  r->p = f->payload;
  r->left = f->tail ? f->head_len : f->length; /* a split frame: the head only (see frame.h) */
  return CRPC__FR_OK;
}

static int rd_u16(reader *r, uint16_t *v) {
  if (r->left < 2)
    return CRPC__FR_PROTO;
  *v = crpc__be16_get(r->p);
  r->p += 2;
  r->left -= 2;
  return CRPC__FR_OK;
}

static int rd_u32(reader *r, uint32_t *v) {
  if (r->left < 4)
    return CRPC__FR_PROTO;
  *v = crpc__be32_get(r->p);
  r->p += 4;
  r->left -= 4;
  return CRPC__FR_OK;
}

/* Points *out at the next n bytes; the check comes before any pointer arithmetic. */
static int rd_bytes(reader *r, size_t n, const uint8_t **out) {
  if (n > r->left)
    return CRPC__FR_PROTO;
  *out = r->p;
  if (n > 0)
    r->p += n;
  r->left -= n;
  return CRPC__FR_OK;
}

/* u32 length then that many bytes. */
static int rd_block(reader *r, const uint8_t **out, uint32_t *len) {
  if (rd_u32(r, len) != 0)
    return CRPC__FR_PROTO;
  return rd_bytes(r, *len, out);
}

/* What follows the fixed fields of CALL and STATUS: a message when the flag says so, else
 * nothing at all (stray bytes mean the peer and we disagree on the layout). */
static int rd_message(reader *r, uint8_t flags, const uint8_t **msg, uint32_t *len) {
  if (!(flags & CRPC__FL_MESSAGE)) {
    *msg = NULL;
    *len = 0;
    return r->left == 0 ? CRPC__FR_OK : CRPC__FR_PROTO;
  }
  /* left <= f->length, a u32, so the cast is exact. An empty message is a valid protobuf. */
  *len = (uint32_t)r->left;
  *msg = r->p;
  r->left = 0;
  return CRPC__FR_OK;
}

static uint8_t *put_block(uint8_t *p, const void *data, uint32_t len) {
  crpc__be32_put(p, len);
  if (len > 0)
    memcpy(p + 4, data, len);
  return p + 4 + len;
}

/* Size arithmetic on caller-supplied size_t values saturates instead of wrapping, so an absurd
 * request yields SIZE_MAX, which any limit check then rejects. */
static size_t add_sat(size_t a, size_t b) {
  return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* ---- Metadata ---------------------------------------------------------------------------------*/

static int md_key_char_ok(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int md_key_ok(const uint8_t *k, uint16_t n) {
  if (n < 1 || n > 255)
    return 0;
  for (uint16_t i = 0; i < n; i++)
    if (!md_key_char_ok(k[i]))
      return 0;
  return 1;
}

static int md_key_is_bin(const uint8_t *k, uint16_t n) {
  return n >= 4 && memcmp(k + n - 4, "-bin", 4) == 0;
}

static int md_text_ok(const uint8_t *v, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (v[i] < 0x20 || v[i] > 0x7E)
      return 0;
  return 1;
}

int crpc__md_next(const uint8_t *block, uint32_t len, uint32_t *pos, crpc__md_entry *out) {
  if (*pos == len)
    return 0;
  if (*pos > len || block == NULL)
    return CRPC__FR_PROTO;
  reader r = {block + *pos, (size_t)len - *pos};
  uint16_t klen;
  uint32_t vlen;
  const uint8_t *key, *val;
  if (rd_u16(&r, &klen) != 0 || rd_bytes(&r, klen, &key) != 0 || rd_u32(&r, &vlen) != 0 ||
      rd_bytes(&r, vlen, &val) != 0)
    return CRPC__FR_PROTO;
  if (!md_key_ok(key, klen))
    return CRPC__FR_PROTO;
  if (!md_key_is_bin(key, klen) && !md_text_ok(val, vlen))
    return CRPC__FR_PROTO;
  out->key = (const char *)key;
  out->key_len = klen;
  out->value = val;
  out->value_len = vlen;
  *pos = len - (uint32_t)r.left;
  return 1;
}

size_t crpc__md_entry_size(size_t key_len, size_t value_len) {
  return add_sat(6, add_sat(key_len, value_len));
}

uint8_t *crpc__md_entry_encode(uint8_t *p, const char *key, uint16_t key_len,
                               const uint8_t *value, uint32_t value_len) {
  crpc__be16_put(p, key_len);
  memcpy(p + 2, key, key_len);
  return put_block(p + 2 + key_len, value, value_len);
}

/* A frame whose metadata block does not walk cleanly is malformed as a whole: checking it here
 * means later walks over an accepted frame cannot fail halfway. */
static int md_block_ok(const uint8_t *block, uint32_t len) {
  uint32_t pos = 0;
  crpc__md_entry e;
  int rc;
  while ((rc = crpc__md_next(block, len, &pos, &e)) == 1)
    ;
  return rc;
}

/* ---- CALL -------------------------------------------------------------------------------------*/

size_t crpc__call_fixed_size(size_t method_len, size_t metadata_len) {
  return add_sat(10, add_sat(method_len, metadata_len));
}

uint8_t *crpc__call_fixed_encode(uint8_t *p, const char *method, uint16_t method_len,
                                 uint32_t timeout_ms, const uint8_t *metadata,
                                 uint32_t metadata_len) {
  crpc__be16_put(p, method_len);
  memcpy(p + 2, method, method_len);
  p += 2 + method_len;
  crpc__be32_put(p, timeout_ms);
  return put_block(p + 4, metadata, metadata_len);
}

int crpc__call_decode(const crpc__frame *f, crpc__call_hdr *out) {
  reader r;
  const uint8_t *method;
  if (reader_init(&r, f) != 0 || rd_u16(&r, &out->method_len) != 0)
    return CRPC__FR_PROTO;
  if (out->method_len < 1 || out->method_len > CRPC__MAX_METHOD_LEN)
    return CRPC__FR_PROTO;
  if (rd_bytes(&r, out->method_len, &method) != 0 || rd_u32(&r, &out->timeout_ms) != 0 ||
      rd_block(&r, &out->metadata, &out->metadata_len) != 0)
    return CRPC__FR_PROTO;
  out->method = (const char *)method;
  if (md_block_ok(out->metadata, out->metadata_len) != 0)
    return CRPC__FR_PROTO;
  return rd_message(&r, f->flags, &out->message, &out->message_len);
}

/* ---- STATUS -----------------------------------------------------------------------------------*/

size_t crpc__status_fixed_size(size_t text_len, size_t metadata_len, size_t details_len) {
  return add_sat(16, add_sat(text_len, add_sat(metadata_len, details_len)));
}

uint8_t *crpc__status_fixed_encode(uint8_t *p, uint32_t code, const char *text,
                                   uint32_t text_len, const uint8_t *metadata,
                                   uint32_t metadata_len, const uint8_t *details,
                                   uint32_t details_len) {
  crpc__be32_put(p, code);
  if (text_len == 0 && metadata_len == 0 && details_len == 0) { /* the common OK status */
    memset(p + 4, 0, 12);
    return p + 16;
  }
  p = put_block(p + 4, text, text_len);
  p = put_block(p, metadata, metadata_len);
  return put_block(p, details, details_len);
}

int crpc__status_decode(const crpc__frame *f, crpc__status_hdr *out) {
  reader r;
  const uint8_t *text;
  const uint8_t *p = f->payload;
  uint32_t plen = f->tail ? f->head_len : f->length;
  if (p && plen >= 16 && (p[4] | p[5] | p[6] | p[7] | p[8] | p[9] | p[10] | p[11] | p[12] |
                               p[13] | p[14] | p[15]) == 0) {
    /* The usual answer: no text, metadata or details (what the general path below yields). */
    out->code = crpc__be32_get(p);
    out->text = (const char *)p + 8;
    out->metadata = p + 12;
    out->details = p + 16;
    out->text_len = out->metadata_len = out->details_len = 0;
    r.p = p + 16;
    r.left = plen - 16;
    return rd_message(&r, f->flags, &out->message, &out->message_len);
  }
  if (reader_init(&r, f) != 0 || rd_u32(&r, &out->code) != 0 ||
      rd_block(&r, &text, &out->text_len) != 0 ||
      rd_block(&r, &out->metadata, &out->metadata_len) != 0 ||
      rd_block(&r, &out->details, &out->details_len) != 0)
    return CRPC__FR_PROTO;
  out->text = (const char *)text;
  if (md_block_ok(out->metadata, out->metadata_len) != 0)
    return CRPC__FR_PROTO;
  return rd_message(&r, f->flags, &out->message, &out->message_len);
}

/* ---- GOAWAY, WINDOW ---------------------------------------------------------------------------*/

size_t crpc__goaway_size(size_t text_len) {
  return add_sat(12, text_len);
}

uint8_t *crpc__goaway_encode(uint8_t *p, uint32_t last_call_id, uint32_t code, const char *text,
                             uint32_t text_len) {
  crpc__be32_put(p, last_call_id);
  crpc__be32_put(p + 4, code);
  return put_block(p + 8, text, text_len);
}

int crpc__goaway_decode(const crpc__frame *f, crpc__goaway *out) {
  reader r;
  const uint8_t *text;
  if (reader_init(&r, f) != 0 || rd_u32(&r, &out->last_call_id) != 0 ||
      rd_u32(&r, &out->code) != 0 || rd_block(&r, &text, &out->text_len) != 0 || r.left != 0)
    return CRPC__FR_PROTO;
  out->text = (const char *)text;
  return CRPC__FR_OK;
}

int crpc__window_decode(const crpc__frame *f, uint32_t *increment) {
  reader r;
  uint32_t v;
  if (reader_init(&r, f) != 0 || rd_u32(&r, &v) != 0 || r.left != 0 || v == 0)
    return CRPC__FR_PROTO;
  *increment = v;
  return CRPC__FR_OK;
}

/* ---- Streaming decoder ------------------------------------------------------------------------*/

void crpc__decoder_init(crpc__decoder *d, uint32_t max_payload, int want_preface) {
  memset(d, 0, sizeof *d);
  d->max_payload = max_payload;
  d->want_preface = want_preface ? 1 : 0;
}

void crpc__decoder_free(crpc__decoder *d) {
  free(d->buf);
  d->buf = NULL;
  d->len = d->cap = 0;
  free(d->tail);
  d->tail = NULL;
  d->tail_at = d->tail_len = d->tail_cap = 0;
}

void crpc__decoder_trim(crpc__decoder *d) {
  if (d->len == 0)
    crpc__decoder_free(d);
}

static uint32_t type_limit(const crpc__decoder *d, uint8_t type) {
  switch (type) {
  case CRPC__F_CALL:
  case CRPC__F_MESSAGE:
  case CRPC__F_STATUS:
    return d->max_payload;
  default:
    return CRPC__MAX_CONTROL_PAYLOAD;
  }
}

/* Grows the buffer to hold at least `want` bytes. Doubling keeps appends cheap, but never past
 * `full` (the size of the unit being assembled), so a peer that announces a large frame and
 * trickles it in only costs us about twice what it has actually sent. */
static int reserve(crpc__decoder *d, size_t want, size_t full) {
  if (want <= d->cap)
    return CRPC__FR_OK;
  size_t cap = d->cap ? d->cap : 64;
  while (cap < want)
    cap = cap > SIZE_MAX / 2 ? want : cap * 2;
  if (cap > full && full >= want)
    cap = full;
  uint8_t *nb = realloc(d->buf, cap);
  if (nb == NULL)
    return CRPC__FR_NOMEM;
  d->buf = nb;
  d->cap = cap;
  return CRPC__FR_OK;
}

static int append(crpc__decoder *d, const uint8_t *p, size_t n, size_t full) {
  if (n == 0)
    return CRPC__FR_OK;
  if (n > SIZE_MAX - d->len)
    return CRPC__FR_NOMEM;
  int rc = reserve(d, d->len + n, full);
  if (rc != 0)
    return rc;
  memcpy(d->buf + d->len, p, n);
  d->len += n;
  return CRPC__FR_OK;
}

/* An early wrong byte is enough to refuse a stray peer: no need to wait for all 8 bytes. */
static int preface_prefix_ok(const uint8_t *p, size_t n) {
  size_t m = n < sizeof preface_magic ? n : sizeof preface_magic;
  return memcmp(p, preface_magic, m) == 0;
}

static int deliver(crpc__decoder *d, const crpc__frame *f, crpc__frame_cb cb, void *ud) {
  int rc = cb(ud, f);
  if (rc < 0)
    return rc;
  if (rc > 0) {
    d->paused = 1;
    return CRPC__DEC_PAUSE;
  }
  return 0;
}

/* Consumes every complete unit (preface, skipped bytes, frame) at the front of p[0..n) and
 * reports in *used how far it got. It stops at an incomplete unit, a pause or an error; the bytes
 * from *used on are then the caller's to keep. Frames are delivered straight from p. */
static int run(crpc__decoder *d, const uint8_t *p, size_t n, size_t *used, crpc__frame_cb cb,
               void *ud) {
  size_t off = 0;
  int rc = 0;
  while (rc == 0) {
    size_t avail = n - off;
    if (d->skip > 0) {
      size_t k = d->skip < avail ? (size_t)d->skip : avail;
      d->skip -= k;
      off += k;
      if (d->skip > 0)
        break;
      continue;
    }
    if (d->want_preface) {
      if (!preface_prefix_ok(p + off, avail)) {
        rc = CRPC__FR_BADMAGIC;
        break;
      }
      if (avail < CRPC__PREFACE_LEN)
        break;
      rc = crpc__preface_decode(p + off, &d->peer_minor);
      if (rc != 0)
        break;
      d->want_preface = 0;
      off += CRPC__PREFACE_LEN;
      continue;
    }
    if (avail < CRPC__HDR_LEN)
      break;
    crpc__frame f;
    rc = crpc__hdr_decode(p + off, &f);
    if (rc != 0)
      break;
    if (f.length > type_limit(d, f.type)) {
      if (type_limit(d, f.type) == CRPC__MAX_CONTROL_PAYLOAD) {
        rc = CRPC__FR_PROTO;
        break;
      }
      /* Tell the owner now, so it can fail the call, then drop the payload as it streams by. */
      f.oversized = 1;
      off += CRPC__HDR_LEN;
      d->skip = f.length;
      rc = deliver(d, &f, cb, ud);
      continue;
    }
    /* avail >= HDR_LEN here, so the subtraction cannot wrap. */
    if (f.length > avail - CRPC__HDR_LEN)
      break;
    f.payload = p + off + CRPC__HDR_LEN;
    off += CRPC__HDR_LEN + (size_t)f.length;
    rc = deliver(d, &f, cb, ud);
  }
  *used = off;
  return rc;
}

/* Size of the unit that the (incomplete) pending bytes start. Called only after run() stopped at
 * an incomplete unit, so a complete header in the buffer is valid and within the limit. */
static size_t unit_size(const crpc__decoder *d) {
  if (d->want_preface)
    return CRPC__PREFACE_LEN;
  if (d->len < CRPC__HDR_LEN)
    return CRPC__HDR_LEN;
  return add_sat(CRPC__HDR_LEN, crpc__be32_get(d->buf));
}

/* Runs the pending buffer, dropping what was consumed. */
static int run_buffer(crpc__decoder *d, crpc__frame_cb cb, void *ud) {
  size_t used = 0;
  int rc = run(d, d->buf, d->len, &used, cb, ud);
  if (d->taken) { /* the one frame there was delivered and its buffer handed away */
    d->taken = 0;
    d->len = 0;
    return rc;
  }
  if (used > 0) {
    memmove(d->buf, d->buf + used, d->len - used);
    d->len -= used;
  }
  return rc;
}

static int feed_tail(crpc__decoder *d, const uint8_t *data, size_t len, size_t *used,
                     crpc__frame_cb cb, void *ud);

int crpc__decoder_feed(crpc__decoder *d, const uint8_t *data, size_t len, crpc__frame_cb cb,
                       void *user_data) {
  int rc;
  if (data == NULL)
    len = 0;
  d->paused = 0;
  if (d->tail) {
    size_t used;
    rc = feed_tail(d, data, len, &used, cb, user_data);
    if (used) {
      data += used;
      len -= used;
    }
    if (rc == CRPC__DEC_PAUSE) {
      int arc = append(d, data, len, len);
      return arc != 0 ? arc : rc;
    }
    if (rc != 0 || d->tail)
      return rc;
  }
  /* Pending bytes first: a paused remainder (possibly several frames) or one incomplete unit,
   * which is topped up from `data` with just the bytes it lacks and then delivered. */
  while (d->len > 0) {
    rc = run_buffer(d, cb, user_data);
    if (rc == CRPC__DEC_PAUSE) {
      /* Keep the new bytes behind the unread ones; the order of frames must not change. */
      int arc = append(d, data, len, d->len + len);
      return arc != 0 ? arc : rc;
    }
    if (rc != 0)
      return rc;
    if (d->len == 0 || len == 0)
      break;
    size_t need = unit_size(d);
    size_t take = need - d->len < len ? need - d->len : len;
    rc = append(d, data, take, need);
    if (rc != 0)
      return rc;
    data += take;
    len -= take;
    if (d->len < need) /* still incomplete; a wrong preface byte is refused at once even so */
      return d->want_preface && !preface_prefix_ok(d->buf, d->len) ? CRPC__FR_BADMAGIC : 0;
  }
  if (len == 0)
    return 0;
  /* Nothing pending: frames come straight from the caller's bytes. */
  size_t used = 0;
  rc = run(d, data, len, &used, cb, user_data);
  if (rc < 0)
    return rc;
  /* Keep the tail: an incomplete unit (at most HDR_LEN + limit bytes, as run() checked the
   * header) or, after a pause, the unread rest of this feed. */
  size_t rest = len - used;
  size_t full = rest;
  if (rc == 0 && rest >= CRPC__HDR_LEN && !d->want_preface)
    full = add_sat(CRPC__HDR_LEN, crpc__be32_get(data + used));
  int arc = append(d, data + used, rest, full);
  return arc != 0 ? arc : rc;
}

size_t crpc__decoder_missing(const crpc__decoder *d) {
  if (d->paused || d->skip || d->want_preface || d->len < CRPC__HDR_LEN)
    return 0;
  size_t need = unit_size(d);
  size_t got = d->tail ? d->tail_at + d->tail_len : d->len;
  return need > got ? need - got : 0;
}

/* A split tail starts with room for this much (or the whole tail when smaller). */
#define CRPC__SPLIT_MIN_CAP 65536

/* Grows the tail to hold `want` bytes, never past `full`. */
static int tail_reserve(crpc__decoder *d, size_t want, size_t full) {
  if (want <= d->tail_cap)
    return CRPC__FR_OK;
  size_t cap = d->tail_cap;
  while (cap < want)
    cap = cap > SIZE_MAX / 2 ? want : cap * 2;
  if (cap > full)
    cap = full;
  uint8_t *nt = realloc(d->tail, cap);
  if (nt == NULL)
    return CRPC__FR_NOMEM;
  d->tail = nt;
  d->tail_cap = cap;
  return CRPC__FR_OK;
}

int crpc__decoder_split(crpc__decoder *d, size_t at) {
  size_t missing = crpc__decoder_missing(d);
  if (missing == 0 || d->tail || at < CRPC__HDR_LEN || at > d->len)
    return -1;
  size_t full = d->len + missing - at; /* the tail's final size */
  size_t have = d->len - at;
  size_t cap = have * 2 > CRPC__SPLIT_MIN_CAP ? have * 2 : CRPC__SPLIT_MIN_CAP;
  if (cap > full)
    cap = full;
  uint8_t *t = malloc(cap);
  if (t == NULL)
    return -1;
  if (have)
    memcpy(t, d->buf + at, have);
  d->tail = t;
  d->tail_at = at;
  d->tail_len = have;
  d->tail_cap = cap;
  d->len = at;
  if (d->stats)
    atomic_fetch_add_explicit(&d->stats->splits, 1, memory_order_relaxed);
  return 0;
}

uint8_t *crpc__decoder_take_tail(crpc__decoder *d, const crpc__frame *f) {
  if (f->tail == NULL || f->tail != d->tail || d->tail_taken)
    return NULL;
  d->tail_taken = 1;
  if (d->stats) {
    atomic_store_explicit(&d->stats->last_tail, (uintptr_t)d->tail, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->stats->tails_lent, 1, memory_order_relaxed);
  }
  return d->tail;
}

/* The split frame is complete: deliver it, then drop the tail unless the callback took it. */
static int deliver_split(crpc__decoder *d, crpc__frame_cb cb, void *ud) {
  crpc__frame f;
  (void)crpc__hdr_decode(d->buf, &f); /* checked when the frame began */
  f.payload = d->buf + CRPC__HDR_LEN;
  f.tail = d->tail;
  f.head_len = (uint32_t)(d->tail_at - CRPC__HDR_LEN);
  d->tail_taken = 0;
  int rc = deliver(d, &f, cb, ud);
  if (!d->tail_taken)
    free(d->tail);
  d->tail = NULL;
  d->tail_at = d->tail_len = d->tail_cap = 0;
  d->tail_taken = 0;
  d->len = 0;
  return rc;
}

/* Bytes fed while a split frame is under way go to its tail. Returns as crpc__decoder_feed, with
 * *used the bytes taken from data. */
static int feed_tail(crpc__decoder *d, const uint8_t *data, size_t len, size_t *used,
                     crpc__frame_cb cb, void *ud) {
  size_t missing = crpc__decoder_missing(d);
  size_t take = missing < len ? missing : len;
  *used = 0;
  if (take) {
    int rc = tail_reserve(d, d->tail_len + take, d->tail_len + missing);
    if (rc != 0)
      return rc;
    memcpy(d->tail + d->tail_len, data, take);
    d->tail_len += take;
    *used = take;
  }
  return crpc__decoder_missing(d) == 0 ? deliver_split(d, cb, ud) : 0;
}

uint8_t *crpc__decoder_take(crpc__decoder *d, const crpc__frame *f) {
  if (!d->buf || d->taken || d->len < CRPC__HDR_LEN || f->payload != d->buf + CRPC__HDR_LEN ||
      d->len - CRPC__HDR_LEN != f->length)
    return NULL;
  uint8_t *b = d->buf;
  d->buf = NULL;
  d->cap = 0;
  d->taken = 1;
  return b;
}

uint8_t *crpc__decoder_space(crpc__decoder *d, size_t min, size_t *n) {
  return crpc__decoder_space_ready(d, min, 0, n);
}

uint8_t *crpc__decoder_space_ready(crpc__decoder *d, size_t min, size_t ready, size_t *n) {
  *n = 0;
  size_t missing = crpc__decoder_missing(d); /* its header was checked against the limit already */
  if (d->tail) { /* a split frame reads into its tail, whatever the size of the read */
    if (missing == 0)
      return NULL;
    size_t full = d->tail_len + missing;
    size_t want = d->tail_len < SIZE_MAX / 2 ? d->tail_len * 2 : SIZE_MAX;
    if (ready > missing)
      ready = missing;
    if (want < d->tail_len + ready)
      want = d->tail_len + ready;
    if (want > full)
      want = full;
    if (tail_reserve(d, want, full) != 0)
      return NULL;
    *n = (d->tail_cap < full ? d->tail_cap : full) - d->tail_len;
    return d->tail + d->tail_len;
  }
  if (missing == 0 || missing < min)
    return NULL;
  size_t need = d->len + missing;
  size_t want = d->len < SIZE_MAX / 2 ? d->len * 2 : SIZE_MAX;
  if (want < d->len + min)
    want = d->len + min;
  if (ready > missing)
    ready = missing;
  if (want < d->len + ready)
    want = d->len + ready;
  if (want > need)
    want = need;
  if (reserve(d, want, need) != 0)
    return NULL;
  *n = (d->cap < need ? d->cap : need) - d->len;
  return d->buf + d->len;
}

int crpc__decoder_commit(crpc__decoder *d, size_t k, crpc__frame_cb cb, void *user_data) {
  if (d->tail) {
    d->tail_len += k;
    d->paused = 0;
    return crpc__decoder_missing(d) == 0 ? deliver_split(d, cb, user_data) : 0;
  }
  d->len += k;
  return crpc__decoder_feed(d, NULL, 0, cb, user_data);
}
