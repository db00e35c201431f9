/* crpc__unpack_lend (unpack_lend.c) and the decoder's buffer hand-over (crpc__decoder_take,
 * crpc__decoder_missing, crpc__decoder_space_ready in frame.c).
 *
 * Every message here is delivered for real: wrapped in a MESSAGE frame (at offset 0 of the payload
 * and behind a prefix, as a CALL's request is) and fed to a crpc__decoder in two pieces, so that
 * the frame is assembled in the decoder's own buffer, and once more whole, so that it comes
 * straight from the fed bytes. crpc__unpack_lend runs inside the frame callback, as the runtime
 * calls it. Its result must be the message protobuf_c_message_unpack makes of the same bytes
 * (compared field by field, has_ flags, oneof cases and unknown fields included, and by packing
 * both again), and NULL exactly when protobuf-c's is. When the message qualifies the big field
 * must point into the buffer the decoder handed over (not copied); when it does not the decoder
 * must keep its buffer. The decoder is freed before the results are compared, so a result that
 * still pointed into a buffer the decoder kept is a use-after-free for ASan; the arenas are
 * destroyed at the end of each case, so an adopted buffer that is not released is a leak for
 * LSan.
 *
 * Every message is also received split (crpc__decoder_split, crpc__unpack_split,
 * crpc__lend_split_point: the client's split receive), see "split receive" below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"
#include "failalloc.h" /* linked with --wrap=malloc,calloc,realloc: fa_arm() fails the N-th */
#include "wire/frame.h"
#include "lend.pb-c.h"
#include "lend3.pb-c.h"
#include "wire/pbdepth.h"
#include "wire/unpack_lend.h"

#define MAXP (16u << 20) /* decoder limit: larger than any message here */

#define PREFIX 37        /* bytes of "CALL header" before the message in the prefixed runs */

/* ---- protobuf wire bytes, written by hand ----------------------------------------------------*/

typedef struct wb {
  uint8_t *b;
  size_t len, cap;
} wb;

static void wb_raw(wb *w, const void *p, size_t n) {
  if (w->len + n + 1 > w->cap) {
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1) cap *= 2;
    w->b = realloc(w->b, cap);
    assert_non_null(w->b);
    w->cap = cap;
  }
  if (n) memcpy(w->b + w->len, p, n);
  w->len += n;
}

static void wb_byte(wb *w, uint8_t c) { wb_raw(w, &c, 1); }

static void wb_varint(wb *w, uint64_t v) {
  while (v >= 0x80) {
    wb_byte(w, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  wb_byte(w, (uint8_t)v);
}

static void wb_key(wb *w, uint32_t number, unsigned wt) { wb_varint(w, (uint64_t)number << 3 | wt); }

static void wb_vfield(wb *w, uint32_t number, uint64_t v) {
  wb_key(w, number, 0);
  wb_varint(w, v);
}

static void wb_fixed32(wb *w, uint32_t number, uint32_t v) {
  wb_key(w, number, 5);
  for (int i = 0; i < 4; i++) wb_byte(w, (uint8_t)(v >> (8 * i)));
}

static void wb_fixed64(wb *w, uint32_t number, uint64_t v) {
  wb_key(w, number, 1);
  for (int i = 0; i < 8; i++) wb_byte(w, (uint8_t)(v >> (8 * i)));
}

static void wb_ld(wb *w, uint32_t number, const void *p, size_t n) {
  wb_key(w, number, 2);
  wb_varint(w, n);
  wb_raw(w, p, n);
}

static uint8_t pat(size_t i, unsigned seed) {
  return (uint8_t)(i * 131u + seed * 977u + (i >> 9) + (i >> 17));
}

static void wb_pattern_bytes(wb *w, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) wb_byte(w, pat(i, seed));
}

/* A length-delimited field of n pattern bytes. */
static void wb_big(wb *w, uint32_t number, size_t n, unsigned seed) {
  wb_key(w, number, 2);
  wb_varint(w, n);
  wb_pattern_bytes(w, n, seed);
}

static void wb_str(wb *w, uint32_t number, const char *s) { wb_ld(w, number, s, strlen(s)); }

static void wb_free(wb *w) {
  free(w->b);
  memset(w, 0, sizeof *w);
}

/* ---- comparing two decoded messages ---------------------------------------------------------*/

static size_t value_size(const ProtobufCFieldDescriptor *fd) {
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_FLOAT:
    return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  }
  fail_msg("field type %d", (int)fd->type);
  return 0;
}

static void assert_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

static void value_equal(const ProtobufCFieldDescriptor *fd, const void *pa, const void *pb) {
  switch (fd->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
    if (!sa || !sb) {
      if (sa != sb) fail_msg("field %s: string set on one side only", fd->name);
      return;
    }
    if (strcmp(sa, sb) != 0) fail_msg("field %s: strings differ", fd->name);
    return;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *ba = pa, *bb = pb;
    if (ba->len != bb->len)
      fail_msg("field %s: %zu bytes vs %zu bytes", fd->name, ba->len, bb->len);
    if (ba->len && memcmp(ba->data, bb->data, ba->len) != 0)
      fail_msg("field %s: bytes differ", fd->name);
    return;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *ma = *(ProtobufCMessage *const *)pa;
    const ProtobufCMessage *mb = *(ProtobufCMessage *const *)pb;
    if (!ma || !mb) {
      if (ma != mb) fail_msg("field %s: message set on one side only", fd->name);
      return;
    }
    assert_msg_equal(ma, mb);
    return;
  }
  default:
    if (memcmp(pa, pb, value_size(fd)) != 0) fail_msg("field %s: values differ", fd->name);
  }
}

/* a and b must hold the same values, set the same way (has_ flags, counts, oneof cases), and
 * keep the same unknown fields. */
static void assert_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  assert_ptr_equal(a->descriptor, b->descriptor);
  const ProtobufCMessageDescriptor *d = a->descriptor;
  const char *ca = (const char *)a, *cb = (const char *)b;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t na = *(const size_t *)(ca + fd->quantifier_offset);
      size_t nb = *(const size_t *)(cb + fd->quantifier_offset);
      if (na != nb) fail_msg("field %s: %zu elements vs %zu", fd->name, na, nb);
      const char *arr_a = *(char *const *)(ca + fd->offset);
      const char *arr_b = *(char *const *)(cb + fd->offset);
      for (size_t k = 0; k < na; k++)
        value_equal(fd, arr_a + k * value_size(fd), arr_b + k * value_size(fd));
    } else if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t qa = *(const uint32_t *)(ca + fd->quantifier_offset);
      uint32_t qb = *(const uint32_t *)(cb + fd->quantifier_offset);
      if (qa != qb) fail_msg("oneof of field %s: case %u vs %u", fd->name, qa, qb);
      if (qa == fd->id) value_equal(fd, ca + fd->offset, cb + fd->offset);
    } else {
      if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset) {
        protobuf_c_boolean ha = *(const protobuf_c_boolean *)(ca + fd->quantifier_offset);
        protobuf_c_boolean hb = *(const protobuf_c_boolean *)(cb + fd->quantifier_offset);
        if (ha != hb) fail_msg("field %s: has_ %d vs %d", fd->name, (int)ha, (int)hb);
      }
      value_equal(fd, ca + fd->offset, cb + fd->offset);
    }
  }
  assert_int_equal(a->n_unknown_fields, b->n_unknown_fields);
  for (unsigned i = 0; i < a->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *ua = &a->unknown_fields[i], *ub = &b->unknown_fields[i];
    assert_int_equal(ua->tag, ub->tag);
    assert_int_equal(ua->wire_type, ub->wire_type);
    assert_int_equal(ua->len, ub->len);
    if (ua->len) assert_memory_equal(ua->data, ub->data, ua->len);
  }
}

static void assert_packs_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
  assert_int_equal(la, lb);
  uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
  assert_non_null(pa);
  assert_non_null(pb);
  assert_int_equal(protobuf_c_message_pack(a, pa), la);
  assert_int_equal(protobuf_c_message_pack(b, pb), lb);
  assert_memory_equal(pa, pb, la);
  free(pa);
  free(pb);
}

/* ---- delivering messages through a decoder ---------------------------------------------------*/

#define MAXF 8

/* One frame's outcome, recorded inside the callback. */
typedef struct delivery {
  const ProtobufCMessageDescriptor *desc;
  size_t prefix;           /* the message starts this far into the payload */
  crpc__arena *arena;      /* the "call's" arena */
  ProtobufCMessage *got;   /* crpc__unpack_lend's result */
  int assembled;           /* the payload lay in the decoder's buffer */
  int taken;               /* ... and the decoder no longer has it */
  const uint8_t *msg_at;   /* where the message lay during the callback */
  size_t msg_len;
  const uint8_t *buf_lo, *buf_hi; /* the decoder's buffer during the callback */
} delivery;

typedef struct run {
  crpc__decoder *dec;
  delivery dl[MAXF];
  int n;      /* frames delivered */
  int pause;  /* return CRPC__DEC_PAUSE after each frame */
  long fail_nth;  /* armed around crpc__unpack_lend: its N-th allocation fails (0: none) */
  int fail_hit;
  size_t prefill; /* bytes taken from the arena first (a full inline block: adopt must malloc) */
  crpc__arena arenas[MAXF]; /* dl[i].arena, unless a test points it elsewhere */
} run;

static int lend_cb(void *ud, const crpc__frame *f) {
  run *r = ud;
  assert_true(r->n < MAXF);
  delivery *dv = &r->dl[r->n++];
  crpc__decoder *d = r->dec;
  assert_int_equal(f->type, CRPC__F_MESSAGE);
  assert_non_null(f->payload);
  assert_true(f->length >= dv->prefix);
  dv->assembled = d->buf != NULL && f->payload == d->buf + CRPC__HDR_LEN;
  dv->buf_lo = d->buf;
  dv->buf_hi = d->buf ? d->buf + d->len : NULL;
  dv->msg_at = f->payload + dv->prefix;
  dv->msg_len = f->length - dv->prefix;
  if (r->prefill) assert_non_null(crpc__arena_alloc(dv->arena, r->prefill));
  fa_arm(FA_ANY, r->fail_nth);
  dv->got = crpc__unpack_lend(dv->desc, dv->arena, dv->msg_len, dv->msg_at, d, f);
  r->fail_hit = fa_injected();
  fa_disarm();
  dv->taken = dv->assembled && d->buf == NULL;
  if (dv->taken) assert_true(d->taken);
  if (!dv->assembled) assert_false(d->taken); /* nothing to take from fed bytes */
  return r->pause ? CRPC__DEC_PAUSE : 0;
}

/* A MESSAGE frame carrying `prefix` filler bytes and then msg. */
static void frame_of(wb *out, const uint8_t *msg, size_t len, size_t prefix, uint32_t id) {
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, CRPC__F_MESSAGE, 0, id, (uint32_t)(prefix + len));
  wb_raw(out, h, sizeof h);
  for (size_t i = 0; i < prefix; i++) wb_byte(out, (uint8_t)(0xA5 ^ i));
  wb_raw(out, msg, len);
}

/* Feeds s[off, off+n) as an exact-size heap copy (ASan sees any read past it), then frees it. */
static int feed_copy(crpc__decoder *d, run *r, const uint8_t *s, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, s, n);
  int rc = crpc__decoder_feed(d, c, n, lend_cb, r);
  free(c); /* a result pointing into the fed bytes would be a use-after-free from here on */
  return rc;
}

static void run_init(run *r, crpc__decoder *d) {
  memset(r, 0, sizeof *r);
  r->dec = d;
  for (int i = 0; i < MAXF; i++) {
    crpc__arena_init(&r->arenas[i]);
    r->dl[i].arena = &r->arenas[i];
  }
}

static void run_destroy(run *r) {
  for (int i = 0; i < MAXF; i++) crpc__arena_destroy(&r->arenas[i]);
}

/* The field crpc__lend_find picks in msg (1), or 0. */
typedef struct found {
  int yes;
  size_t field_at, bytes_at, bytes_len;
  const ProtobufCFieldDescriptor *fd;
} found;

static found find(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len) {
  found fo = {0};
  fo.yes = crpc__lend_find(desc, len, msg, &fo.field_at, &fo.bytes_at, &fo.bytes_len, &fo.fd);
  if (fo.yes) {
    assert_non_null(fo.fd);
    assert_int_equal(fo.fd->type, PROTOBUF_C_TYPE_BYTES);
    assert_true(fo.field_at < fo.bytes_at);
    assert_true(fo.bytes_at + fo.bytes_len <= len);
    /* the key at field_at names that field, length-delimited */
    uint64_t key = 0;
    size_t p = fo.field_at;
    for (unsigned s = 0; p < fo.bytes_at; s += 7) {
      uint8_t c = msg[p++];
      key |= (uint64_t)(c & 0x7f) << s;
      if (!(c & 0x80)) break;
    }
    assert_int_equal(key >> 3, fo.fd->id);
    assert_int_equal(key & 7, 2);
  }
  return fo;
}

/* Checks one delivery of msg against protobuf-c's own result `plain` (NULL: refused). */
static void check_delivery(const delivery *dv, const ProtobufCMessage *plain, const found *fo,
                           size_t prefix, int want_lent) {
  if (want_lent == 1 && !plain) fail_msg("test bug: a qualifying case that protobuf-c refuses");
  if (!plain) {
    if (dv->got) fail_msg("crpc__unpack_lend decoded bytes that protobuf_c_message_unpack refuses");
    return;
  }
  if (!dv->got) fail_msg("crpc__unpack_lend refused bytes that protobuf_c_message_unpack decodes");
  assert_msg_equal(dv->got, plain);
  assert_packs_equal(dv->got, plain);
  if (want_lent == 1 && dv->assembled && !dv->taken)
    fail_msg("a qualifying message in the decoder's buffer was copied, not lent");
  if (want_lent == 0 && dv->taken) fail_msg("a message that must not be lent took the buffer");
  if (dv->taken) {
    /* the field points into the handed-over buffer, right where its bytes were */
    assert_true(fo->yes);
    const ProtobufCBinaryData *bd =
        (const ProtobufCBinaryData *)((const char *)dv->got + fo->fd->offset);
    assert_ptr_equal(bd->data, dv->buf_lo + CRPC__HDR_LEN + prefix + fo->bytes_at);
    assert_true(bd->data >= dv->buf_lo && bd->data + bd->len <= dv->buf_hi);
    assert_int_equal(bd->len, fo->bytes_len);
  }
}

/* Delivers msg three ways (split at `split` of the frame with the message at payload offset 0;
 * split in the header with the message behind PREFIX bytes; whole in one feed) and checks each.
 * want_lent: 1 the message qualifies and must be lent when assembled, 0 it must never be lent,
 * -1 either (malformed input whose only requirement is agreeing with protobuf-c). */
static void check_msg_split(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                            int want_lent, size_t split) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len) memcpy(copy, msg, len);
  ProtobufCMessage *plain = protobuf_c_message_unpack(desc, NULL, len, copy);
  found fo = find(desc, msg, len);
  if (want_lent == 1) assert_true(fo.yes);
  if (want_lent == 0) assert_false(fo.yes);

  static const struct {
    size_t prefix;
    int whole;
  } ways[] = {{0, 0}, {PREFIX, 0}, {0, 1}, {PREFIX, 1}};
  for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
    wb fr = {0};
    frame_of(&fr, msg, len, ways[w].prefix, 9);
    crpc__decoder d;
    crpc__decoder_init(&d, MAXP, 0);
    run r;
    run_init(&r, &d);
    r.dl[0].desc = desc;
    r.dl[0].prefix = ways[w].prefix;
    if (ways[w].whole) {
      assert_int_equal(feed_copy(&d, &r, fr.b, fr.len), 0);
    } else {
      size_t cut = w == 0 ? split : 5; /* the second: even the header is split */
      if (cut >= fr.len) cut = fr.len - 1;
      assert_int_equal(feed_copy(&d, &r, fr.b, cut), 0);
      assert_int_equal(r.n, 0);
      assert_int_equal(feed_copy(&d, &r, fr.b + cut, fr.len - cut), 0);
    }
    assert_int_equal(r.n, 1);
    assert_int_equal(r.dl[0].assembled, !ways[w].whole);
    assert_int_equal(d.len, 0);
    assert_int_equal(d.taken, 0); /* reset once the frame was handed over */
    crpc__decoder_free(&d);       /* nothing may point into its buffer any more */
    wb_free(&fr);
    check_delivery(&r.dl[0], plain, &fo, ways[w].prefix, ways[w].whole ? 0 : want_lent);
    run_destroy(&r);
  }
  if (plain) protobuf_c_message_free_unpacked(plain, NULL);
  free(copy);
}

/* ---- split receive: crpc__lend_split_point and crpc__unpack_split ----------------------------
 * A client response can be split while it arrives (crpc__decoder_split) where a large bytes
 * field's value begins; crpc__unpack_split then decodes the rest with protobuf-c and makes the
 * tail block the field's own allocation (the arena's, or with arena NULL the caller's, freed with
 * protobuf_c_message_free_unpacked(m, NULL)). Every message of this file is also delivered split
 * that way, at the start of every length-delimited value and at a few arbitrary points, with an
 * arena and without: the result must be protobuf-c's for the joined bytes (NULL exactly when
 * protobuf-c refuses them), and the tail must become the field's block exactly when the split is
 * at a value that may be lent (split_should_lend). The decoder is freed before the results are
 * compared; heap results are freed with protobuf_c_message_free_unpacked(m, NULL), which must
 * free everything, the tail included (LSan), and nothing it does not own (ASan). */

#define SPLIT_DEPTH 100 /* max_depth for crpc__unpack_split unless a test says otherwise */
#define LEND_FIELD_MIN 32768
#define LEND_REST_MAX 16384

/* A varint as protobuf-c reads keys and length prefixes: at most five bytes, and (crpc's rule)
 * no more than 32 bits. 0, or -1 when it does not end within p[0..end) that way. */
static int rd_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *v, unsigned max_bytes) {
  uint64_t x = 0;
  for (unsigned i = 0; i < max_bytes && *pos < end; i++) {
    uint8_t c = p[(*pos)++];
    x |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

static int rd_key_or_len(const uint8_t *p, size_t end, size_t *pos, uint64_t *v) {
  return rd_varint(p, end, pos, v, 5) == 0 && *v <= UINT32_MAX ? 0 : -1;
}

/* Steps over one field's value (length-delimited ones: *n their length, *pos left at their start).
 * -1 when it does not fit in p[0..end). */
static int rd_value(const uint8_t *p, size_t end, size_t *pos, unsigned wt, uint64_t *n) {
  switch (wt) {
  case 0:
    return rd_varint(p, end, pos, n, 10);
  case 1:
  case 5:
    if (end - *pos < (wt == 1 ? 8u : 4u)) return -1;
    *pos += wt == 1 ? 8 : 4;
    return 0;
  case 2:
    return rd_key_or_len(p, end, pos, n);
  default:
    return -1;
  }
}

/* The field crpc__unpack_split may lend: a singular bytes field, not in a oneof, not required. */
static const ProtobufCFieldDescriptor *may_lend(const ProtobufCMessageDescriptor *desc,
                                                uint64_t number) {
  if (number == 0 || number > 0x1fffffff) return NULL;
  const ProtobufCFieldDescriptor *fd =
      protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
  if (!fd || fd->type != PROTOBUF_C_TYPE_BYTES || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
    return NULL;
  if (fd->label != PROTOBUF_C_LABEL_OPTIONAL && fd->label != PROTOBUF_C_LABEL_NONE) return NULL;
  return fd;
}

/* Occurrences of `number` among the fields of p[0..len), or -1 when they do not walk. */
static int occurrences(const uint8_t *p, size_t len, uint64_t number) {
  size_t pos = 0;
  int count = 0;
  while (pos < len) {
    uint64_t key, n = 0;
    if (rd_key_or_len(p, len, &pos, &key) != 0 ||
        rd_value(p, len, &pos, (unsigned)(key & 7), &n) != 0)
      return -1;
    if ((key & 7) == 2) {
      if (n > len - pos) return -1;
      pos += (size_t)n;
    }
    if (key >> 3 == number) count++;
  }
  return count;
}

/* Where a split of msg at message offset mat is lendable: the value of field *fd_out, of *n_out
 * bytes, whose key starts at *key_out. 1 when the split is at the start of a length-delimited
 * value (walking from the start), else 0. */
static int split_value(const uint8_t *msg, size_t mat, size_t *key_out, uint64_t *num_out,
                       uint64_t *n_out) {
  size_t pos = 0;
  while (pos < mat) {
    size_t key_at = pos;
    uint64_t key, n = 0;
    if (rd_key_or_len(msg, mat, &pos, &key) != 0 ||
        rd_value(msg, mat, &pos, (unsigned)(key & 7), &n) != 0)
      return 0;
    if ((key & 7) != 2) continue;
    if (pos == mat) {
      *key_out = key_at;
      *num_out = key >> 3;
      *n_out = n;
      return 1;
    }
    if (n > mat - pos) return 0;
    pos += (size_t)n;
  }
  return 0;
}

/* 1 when msg split at mat must come out with the tail as the field's block. */
static int split_should_lend(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                             size_t mat, int plain_ok) {
  size_t key_at;
  uint64_t number, n;
  if (!plain_ok || !split_value(msg, mat, &key_at, &number, &n)) return 0;
  if (!may_lend(desc, number) || n > len - mat) return 0;
  if (len - (mat - key_at) - n > LEND_REST_MAX) return 0;
  return occurrences(msg, len, number) == 1;
}

/* What crpc__lend_split_point must answer for the first `have` bytes of msg (len in all). */
static size_t expected_split_point(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                                   size_t have, size_t len) {
  size_t pos = 0;
  while (pos < have) {
    size_t key_at = pos;
    uint64_t key, n = 0;
    if (rd_key_or_len(msg, have, &pos, &key) != 0 ||
        rd_value(msg, have, &pos, (unsigned)(key & 7), &n) != 0)
      return 0;
    if ((key & 7) != 2) continue;
    if (n > len - pos) return 0;
    if (n <= have - pos) {
      pos += (size_t)n;
      continue;
    }
    if (n < LEND_FIELD_MIN || len - n - (pos - key_at) > LEND_REST_MAX || !may_lend(desc, key >> 3))
      return 0;
    return pos;
  }
  return 0;
}

/* What a client makes of a whole response (call.c): crpc__pb_depth_check, then protobuf-c. The
 * depth check also refuses a few things protobuf-c takes (a field number past 2^29 - 1), for a
 * split response as for any other; otherwise this is protobuf_c_message_unpack's result. */
static ProtobufCMessage *reference_unpack(const ProtobufCMessageDescriptor *desc,
                                          const uint8_t *msg, size_t len, unsigned max_depth) {
  if (crpc__pb_depth_check(desc, msg, len, max_depth) != 0) return NULL;
  return protobuf_c_message_unpack(desc, NULL, len, msg);
}

/* One split delivery, recorded inside the frame callback. */
typedef struct sdelivery {
  crpc__decoder *dec;
  const ProtobufCMessageDescriptor *desc;
  size_t prefix;
  crpc__arena *arena;  /* NULL: the heap */
  unsigned max_depth;
  long fail_nth;       /* armed around crpc__unpack_split */
  int fail_hit;
  int n;               /* frames delivered */
  int rc;
  ProtobufCMessage *got;
  const uint8_t *tail; /* f->tail during the callback */
  size_t tail_len;
  int taken;           /* the decoder no longer owns the tail */
} sdelivery;

static int split_cb(void *ud, const crpc__frame *f) {
  sdelivery *s = ud;
  crpc__decoder *d = s->dec;
  s->n++;
  assert_int_equal(s->n, 1);
  assert_non_null(f->tail);
  assert_ptr_equal(f->tail, d->tail);
  assert_true(f->head_len >= s->prefix && f->head_len < f->length);
  s->tail = f->tail;
  s->tail_len = f->length - f->head_len;
  s->got = (ProtobufCMessage *)&s->got; /* must be overwritten */
  fa_arm(FA_ANY, s->fail_nth);
  s->rc = crpc__unpack_split(s->desc, s->arena, NULL, f->payload + s->prefix, f->head_len - s->prefix, d,
                             f, s->max_depth, &s->got);
  s->fail_hit = fa_injected();
  fa_disarm();
  s->taken = d->tail_taken;
  if (s->rc == 0) assert_non_null(s->got);
  else assert_null(s->got);
  return 0;
}

/* Delivers msg in a MESSAGE frame, behind `prefix` bytes, split at message offset mat (with
 * `extra` more bytes in hand at the split), the rest fed in two pieces, or read as direct reads
 * when `direct`. */
static void deliver_split(sdelivery *s, const uint8_t *msg, size_t len, size_t mat, size_t extra,
                          int direct) {
  wb fr = {0};
  frame_of(&fr, msg, len, s->prefix, 3);
  size_t at = CRPC__HDR_LEN + s->prefix + mat;
  assert_true(at < fr.len);
  size_t first = at + extra < fr.len ? at + extra : fr.len - 1;
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  s->dec = &d;
  s->n = 0;
  uint8_t *c = malloc(fr.len);
  assert_non_null(c);
  memcpy(c, fr.b, fr.len);
  assert_int_equal(crpc__decoder_feed(&d, c, first, split_cb, s), 0);
  assert_int_equal(crpc__decoder_split(&d, at), 0);
  if (direct) {
    size_t pos = first, n;
    while (pos < fr.len) {
      uint8_t *p = crpc__decoder_space_ready(&d, 1, 100000, &n);
      assert_non_null(p);
      assert_true(n <= fr.len - pos);
      memcpy(p, c + pos, n);
      pos += n;
      assert_int_equal(crpc__decoder_commit(&d, n, split_cb, s), 0);
    }
  } else {
    size_t mid = first + (fr.len - first) / 2;
    assert_int_equal(crpc__decoder_feed(&d, c + first, mid - first, split_cb, s), 0);
    assert_int_equal(crpc__decoder_feed(&d, c + mid, fr.len - mid, split_cb, s), 0);
  }
  memset(c, 0xEE, fr.len);
  free(c);
  assert_int_equal(s->n, 1);
  assert_null(d.tail);
  crpc__decoder_free(&d); /* the result must not point into anything of the decoder's */
  s->dec = NULL;
  wb_free(&fr);
}

/* Releases a result of crpc__unpack_split made without an arena. */
static void free_heap_result(ProtobufCMessage *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

/* msg split at mat: checked against protobuf-c's own decode of msg (`plain`, NULL: refused). */
static void check_split_at(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                           const ProtobufCMessage *plain, size_t mat, size_t prefix, int heap,
                           size_t extra, int direct) {
  int lend = split_should_lend(desc, msg, len, mat, plain != NULL);
  crpc__arena arena;
  crpc__arena_init(&arena);
  sdelivery s;
  memset(&s, 0, sizeof s);
  s.desc = desc;
  s.prefix = prefix;
  s.arena = heap ? NULL : &arena;
  s.max_depth = SPLIT_DEPTH;
  deliver_split(&s, msg, len, mat, extra, direct);
  if (!plain) {
    if (s.rc == 0)
      fail_msg("split at %zu: crpc__unpack_split decoded bytes protobuf-c refuses", mat);
    assert_false(s.taken);
  } else {
    if (s.rc != 0)
      fail_msg("split at %zu of %zu (%s): crpc__unpack_split refused bytes protobuf-c decodes", mat,
               len, heap ? "heap" : "arena");
    assert_msg_equal(s.got, plain);
    assert_packs_equal(s.got, plain);
    if (s.taken != lend)
      fail_msg("split at %zu of %zu (%s): the tail was %s", mat, len, heap ? "heap" : "arena",
               s.taken ? "lent where it must not be" : "not lent where it must be");
    if (s.taken) {
      size_t key_at;
      uint64_t number, n;
      assert_true(split_value(msg, mat, &key_at, &number, &n));
      const ProtobufCFieldDescriptor *fd = may_lend(desc, number);
      assert_non_null(fd);
      const ProtobufCBinaryData *bd =
          (const ProtobufCBinaryData *)((const char *)s.got + fd->offset);
      /* the field's data is the tail block itself: its first byte, its own allocation */
      assert_ptr_equal(bd->data, s.tail);
      assert_int_equal(bd->len, n);
      if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset)
        assert_true(*(const protobuf_c_boolean *)((const char *)s.got + fd->quantifier_offset));
    }
  }
  if (heap) free_heap_result(s.got);
  crpc__arena_destroy(&arena); /* frees an adopted tail; LSan sees one that was not adopted */
}

/* Every split of msg worth trying: each length-delimited value's start at the top level (the
 * lendable one and all the others), the point crpc__lend_split_point picks, and a few arbitrary
 * offsets; alternately with and without an arena, at payload offset 0 and behind PREFIX. Also
 * checks crpc__lend_split_point against expected_split_point for various amounts in hand. */
static void check_split_receive(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                                size_t len, const found *fo, int want_lent) {
  if (len < 2) return;
  uint8_t *copy = malloc(len);
  assert_non_null(copy);
  memcpy(copy, msg, len);
  ProtobufCMessage *plain = reference_unpack(desc, copy, len, SPLIT_DEPTH);
  size_t mats[64];
  int nm = 0;
  mats[nm++] = 0;
  mats[nm++] = 1;
  mats[nm++] = len / 2;
  mats[nm++] = len - 1;
  /* the start of every top-level length-delimited value (as far as the message walks) */
  size_t pos = 0;
  while (pos < len && nm < 60) {
    uint64_t key, n = 0;
    if (rd_key_or_len(msg, len, &pos, &key) != 0 ||
        rd_value(msg, len, &pos, (unsigned)(key & 7), &n) != 0)
      break;
    if ((key & 7) != 2) continue;
    if (pos < len) mats[nm++] = pos;
    if (n > len - pos) break;
    pos += (size_t)n;
  }
  if (want_lent == 1) {
    assert_true(fo->yes);
    assert_true(split_should_lend(desc, msg, len, fo->bytes_at, plain != NULL));
  }
  /* crpc__lend_split_point for what might be in hand */
  size_t haves[] = {0, 1, 2, 3, len / 3, len / 2, len - 1, len,
                    fo->yes ? fo->bytes_at - 1 : 0, fo->yes ? fo->bytes_at : 0,
                    fo->yes ? fo->bytes_at + 1 : 0, fo->yes ? fo->bytes_at + fo->bytes_len - 1 : 0,
                    fo->yes ? fo->bytes_at + fo->bytes_len : 0};
  for (size_t h = 0; h < sizeof haves / sizeof haves[0]; h++) {
    size_t have = haves[h];
    size_t got = crpc__lend_split_point(desc, msg, have, len);
    size_t want = expected_split_point(desc, msg, have, len);
    if (got != want)
      fail_msg("crpc__lend_split_point(have %zu of %zu) = %zu, expected %zu", have, len, got, want);
    if (want_lent == 1 && have > fo->bytes_at && have < fo->bytes_at + fo->bytes_len)
      assert_int_equal(got, fo->bytes_at); /* a qualifying message: split at its big value */
    if (got) {
      assert_true(got <= have && got < len);
      if (nm < 64) mats[nm++] = got;
    }
  }
  for (int i = 0; i < nm; i++) {
    int heap = i & 1;
    size_t prefix = (i >> 1) & 1 ? PREFIX : 0;
    check_split_at(desc, msg, len, plain, mats[i], prefix, heap, (size_t)i * 13, i % 3 == 2);
  }
  /* the lendable split both ways, and with the rest arriving by direct reads */
  if (fo->yes)
    for (int heap = 0; heap < 2; heap++)
      for (int direct = 0; direct < 2; direct++)
        check_split_at(desc, msg, len, plain, fo->bytes_at, heap ? PREFIX : 0, heap, 0, direct);
  free_heap_result(plain);
  free(copy);
}

static void check_msg(const ProtobufCMessageDescriptor *desc, const wb *m, int want_lent) {
  check_msg_split(desc, m->b, m->len, want_lent, CRPC__HDR_LEN + m->len / 2);
  found fo = find(desc, m->b, m->len);
  check_split_receive(desc, m->b, m->len, &fo, want_lent);
}

/* ---- proto2 -----------------------------------------------------------------------------------*/

static void p2_only_data(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 3, 70000, 1);
  check_msg(&lend__big__descriptor, &m, 1);
  /* cut anywhere: right after the header, in the key, in the length, at the last byte */
  size_t cuts[] = {CRPC__HDR_LEN, CRPC__HDR_LEN + 1, CRPC__HDR_LEN + 2, CRPC__HDR_LEN + 3,
                   CRPC__HDR_LEN + m.len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
    check_msg_split(&lend__big__descriptor, m.b, m.len, 1, cuts[i]);
  wb_free(&m);
}

/* Fields of every kind before and after the big one, unknown fields among them. */
static void build_mixed(wb *m, size_t big, unsigned seed) {
  wb inner = {0};
  wb_vfield(&inner, 1, 7);
  wb_str(&inner, 2, "inner");
  wb_key(&inner, 3, 0); /* an unpacked repeated sint32 ... */
  wb_varint(&inner, 3);  /* ... -2 */
  wb_vfield(&inner, 3, 4);
  wb_vfield(&inner, 99, 5); /* unknown inside the nested message */

  wb packed = {0};
  for (uint32_t v = 0; v < 20; v++) wb_varint(&packed, v * 1000u);

  wb_vfield(m, 1, (uint64_t)(int64_t)-5); /* negative int32: a ten-byte varint */
  wb_str(m, 2, "hello");
  wb_vfield(m, 100, 12345);         /* unknown varint */
  wb_ld(m, 101, "xyz", 3);          /* unknown length-delimited */
  wb_str(m, 12, "tag-a");
  wb_big(m, 3, big, seed);
  wb_ld(m, 4, inner.b, inner.len);
  wb_fixed64(m, 5, 0x0123456789abcdefull);
  wb_ld(m, 6, packed.b, packed.len);
  wb_fixed32(m, 200, 0xdeadbeef);   /* unknown fixed32 */
  wb_str(m, 7, "tail");
  wb_big(m, 8, 100, seed + 1);      /* a second, small, bytes field */
  wb_fixed64(m, 9, 0x400921fb54442d18ull); /* pi */
  wb_fixed32(m, 10, 77);
  wb_vfield(m, 11, 1);
  wb_fixed64(m, 201, 42);           /* unknown fixed64 */
  wb_str(m, 12, "tag-b");
  wb_free(&inner);
  wb_free(&packed);
}

static void p2_mixed(void **state) {
  (void)state;
  wb m = {0};
  build_mixed(&m, 100000, 2);
  check_msg(&lend__big__descriptor, &m, 1);
  /* and the decoded values are the ones written (not merely equal to protobuf-c's) */
  crpc__arena a;
  crpc__arena_init(&a);
  Lend__Big *b = (Lend__Big *)protobuf_c_message_unpack(&lend__big__descriptor, &a.pb, m.len, m.b);
  assert_non_null(b);
  assert_true(b->has_data);
  assert_int_equal(b->data.len, 100000);
  assert_int_equal(b->data.data[12345], pat(12345, 2));
  assert_int_equal(b->before, -5);
  assert_int_equal(b->base.n_unknown_fields, 4);
  assert_int_equal(b->n_tags, 2);
  crpc__arena_destroy(&a);
  wb_free(&m);
}

/* The big field first, last, and fields repeated around it (non-repeated ones: last one wins). */
static void p2_orders(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 3, 80000, 3);
  wb_vfield(&m, 1, 1);
  wb_vfield(&m, 1, 2); /* later wins */
  wb_str(&m, 7, "x");
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);

  wb_str(&m, 7, "first");
  wb_vfield(&m, 1, 9);
  wb_str(&m, 7, "second");
  wb_big(&m, 3, 80000, 4);
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);
}

/* A message field and a string at the same time as the big field: merged sub-messages. */
static void p2_nested_merge(void **state) {
  (void)state;
  wb inner1 = {0}, inner2 = {0}, m = {0};
  wb_vfield(&inner1, 1, 5);
  wb_vfield(&inner1, 3, 2);
  wb_str(&inner2, 2, "merged");
  wb_vfield(&inner2, 3, 8);
  wb_ld(&m, 4, inner1.b, inner1.len);
  wb_big(&m, 3, 66000, 5);
  wb_ld(&m, 4, inner2.b, inner2.len); /* the two occurrences of `inner` merge */
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);
  wb_free(&inner1);
  wb_free(&inner2);
}

static void p2_required_bytes(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 1, 70000, 6);
  wb_vfield(&m, 2, 3);
  check_msg(&lend__required__descriptor, &m, 0);
  wb_free(&m);
}

/* The big field may lend while another field is required: present, and missing (NULL). */
static void p2_other_required(void **state) {
  (void)state;
  wb m = {0};
  wb_vfield(&m, 1, 17);
  wb_big(&m, 2, 70000, 7);
  check_msg(&lend__needs_id__descriptor, &m, 1);
  wb_free(&m);
  wb_big(&m, 2, 70000, 8); /* id missing: protobuf-c refuses the message */
  check_msg(&lend__needs_id__descriptor, &m, -1);
  wb_free(&m);
}

static void p2_oneof(void **state) {
  (void)state;
  wb m = {0};
  wb_vfield(&m, 3, 4);
  wb_big(&m, 1, 70000, 9);
  check_msg(&lend__choice__descriptor, &m, 0);
  wb_free(&m);
  wb_str(&m, 2, "text first"); /* the oneof's other member, then the bytes: the bytes win */
  wb_big(&m, 1, 70000, 10);
  check_msg(&lend__choice__descriptor, &m, 0);
  wb_free(&m);
  wb_big(&m, 1, 70000, 11); /* the bytes, then the other member: the text wins */
  wb_str(&m, 2, "text last");
  check_msg(&lend__choice__descriptor, &m, 0);
  wb_free(&m);
}

static void p2_repeated(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 1, 70000, 12); /* once: still a repeated field */
  check_msg(&lend__many__descriptor, &m, 0);
  wb_big(&m, 1, 10, 13);
  wb_vfield(&m, 2, 1);
  check_msg(&lend__many__descriptor, &m, 0);
  wb_free(&m);
}

/* The big field twice: protobuf-c keeps the last; no lending. */
static void p2_twice(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 3, 70000, 14);
  wb_big(&m, 3, 1000, 15);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  wb_big(&m, 3, 1000, 16);
  wb_big(&m, 3, 70000, 17);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  wb_big(&m, 3, 40000, 18);
  wb_big(&m, 3, 40000, 19);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  /* the same number again with another wire type: protobuf-c refuses it */
  wb_big(&m, 3, 70000, 20);
  wb_vfield(&m, 3, 1);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
}

static void p2_default(void **state) {
  (void)state;
  wb m = {0};
  wb_vfield(&m, 2, 1);
  wb_big(&m, 1, 70000, 21);
  check_msg(&lend__dflt__descriptor, &m, 1);
  wb_free(&m);
  /* no data at all: the default stays, and the big unknown field is not ours to lend */
  wb_vfield(&m, 2, 1);
  wb_big(&m, 50, 70000, 22);
  check_msg(&lend__dflt__descriptor, &m, 0);
  wb_free(&m);
}

/* The largest field is not a singular bytes field: a string, a message, a packed repeated
 * field, an unknown number, a number declared as an int. */
static void p2_largest_not_bytes(void **state) {
  (void)state;
  wb m = {0}, sub = {0};
  char *s = malloc(70001);
  assert_non_null(s);
  memset(s, 's', 70000);
  s[70000] = '\0';
  wb_str(&m, 1, s);
  check_msg(&lend__not_bytes__descriptor, &m, 0);
  wb_free(&m);

  wb_str(&sub, 2, s); /* Inner.s */
  wb_ld(&m, 4, sub.b, sub.len);
  wb_big(&m, 3, 100, 23);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  wb_free(&sub);

  for (uint32_t v = 0; v < 30000; v++) wb_varint(&sub, v);
  wb_ld(&m, 6, sub.b, sub.len); /* nums, packed */
  wb_big(&m, 3, 100, 24);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  wb_free(&sub);

  wb_big(&m, 77, 70000, 25); /* unknown */
  wb_big(&m, 3, 100, 26);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);

  wb_big(&m, 1, 70000, 27); /* `before` is an int32: protobuf-c refuses */
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  free(s);
}

/* Thresholds: the message from 64 KiB on, the rest (all but the big field's key, length and
 * bytes) up to 16 KiB. */
static void p2_thresholds(void **state) {
  (void)state;
  wb m = {0};
  /* key 1 + length 3 + n bytes: n = 65532 makes 65536 */
  wb_big(&m, 3, 65531, 28);
  assert_int_equal(m.len, 65535);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  wb_big(&m, 3, 65532, 29);
  assert_int_equal(m.len, 65536);
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);

  char *s = malloc(16400);
  assert_non_null(s);
  memset(s, 'r', 16399);
  s[16381] = '\0'; /* name: key 1 + length 2 + 16381 = 16384 bytes of rest */
  wb_str(&m, 2, s);
  wb_big(&m, 3, 100000, 30);
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);
  s[16381] = 'r';
  s[16382] = '\0'; /* 16385 bytes of rest */
  wb_str(&m, 2, s);
  wb_big(&m, 3, 100000, 31);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  free(s);

  /* two large bytes fields: the rest is the other one, too large */
  wb_big(&m, 3, 40000, 32);
  wb_big(&m, 8, 30000, 33);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
  /* a big field of 32 KiB - 1 in a message of 64 KiB: the rest cannot be small */
  wb_big(&m, 3, 32767, 34);
  wb_big(&m, 8, 32767, 35);
  check_msg(&lend__big__descriptor, &m, 0);
  wb_free(&m);
}

/* ---- proto3 -----------------------------------------------------------------------------------*/

static void p3_singular(void **state) {
  (void)state;
  wb m = {0}, inner = {0}, entry = {0};
  wb_big(&m, 2, 70000, 40);
  check_msg(&lend3__plain3__descriptor, &m, 1);
  wb_free(&m);

  wb_vfield(&inner, 1, 3);
  wb_str(&inner, 2, "i");
  wb_str(&entry, 1, "key");
  wb_vfield(&entry, 2, 11);
  wb_vfield(&m, 1, 1);
  wb_str(&m, 3, "name");
  wb_ld(&m, 7, entry.b, entry.len); /* a map entry */
  wb_big(&m, 2, 200000, 41);
  wb_ld(&m, 4, inner.b, inner.len);
  wb_vfield(&m, 5, 1); /* unpacked repeated, then packed: both accepted */
  wb_ld(&m, 5, "\x01\x02\x03", 3);
  wb_vfield(&m, 6, 99); /* sint64 */
  wb_vfield(&m, 1000, 1);
  wb_ld(&m, 7, entry.b, entry.len); /* the map again */
  check_msg(&lend3__plain3__descriptor, &m, 1);
  wb_free(&m);
  /* an empty big field is no big field */
  wb_ld(&m, 2, "", 0);
  wb_big(&m, 3, 70000, 42); /* the string is the largest */
  check_msg(&lend3__plain3__descriptor, &m, 0);
  wb_free(&m);
  wb_free(&inner);
  wb_free(&entry);
}

static void p3_oneof_repeated(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 1, 70000, 43);
  wb_vfield(&m, 3, 2);
  check_msg(&lend3__choice3__descriptor, &m, 0);
  check_msg(&lend3__many3__descriptor, &m, 0);
  wb_free(&m);
}

/* ---- malformed --------------------------------------------------------------------------------*/

static void check_cut(const ProtobufCMessageDescriptor *desc, const wb *m, size_t len) {
  wb t = {0};
  wb_raw(&t, m->b, len);
  check_msg(desc, &t, -1);
  wb_free(&t);
}

static void malformed_truncated(void **state) {
  (void)state;
  wb m = {0};
  build_mixed(&m, 90000, 50);
  /* in the last field, in the big field, just after the big field's key, and a few others */
  size_t cuts[] = {m.len - 1, m.len - 3, m.len / 2, 70000, 65536};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) check_cut(&lend__big__descriptor, &m, cuts[i]);
  wb_free(&m);
  wb_big(&m, 3, 70000, 51);
  check_cut(&lend__big__descriptor, &m, m.len - 1);
  wb_free(&m);
}

static void malformed_varint(void **state) {
  (void)state;
  wb m = {0};
  wb_key(&m, 1, 0);
  for (int i = 0; i < 11; i++) wb_byte(&m, 0xff); /* eleven bytes: no varint */
  wb_byte(&m, 0x01);
  wb_big(&m, 3, 70000, 52);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);

  wb_big(&m, 3, 70000, 53);
  wb_key(&m, 1, 0);
  wb_byte(&m, 0x80); /* varint running off the end */
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);

  /* the big field's length itself never ends */
  wb_key(&m, 3, 2);
  for (int i = 0; i < 11; i++) wb_byte(&m, 0xff);
  wb_pattern_bytes(&m, 70000, 54);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
}

static void malformed_lengths(void **state) {
  (void)state;
  wb m = {0}, inner = {0};
  /* a length-delimited field that runs one past the end */
  wb_big(&m, 3, 70000, 55);
  wb_key(&m, 2, 2);
  wb_varint(&m, 6);
  wb_raw(&m, "abcde", 5);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  /* the big field's length one past the end */
  wb_key(&m, 3, 2);
  wb_varint(&m, 70001);
  wb_pattern_bytes(&m, 70000, 56);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  /* fine at the top, wrong inside the nested message (a string running past the inner end) */
  wb_key(&inner, 2, 2);
  wb_varint(&inner, 10);
  wb_raw(&inner, "abc", 3);
  wb_ld(&m, 4, inner.b, inner.len);
  wb_big(&m, 3, 70000, 57);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  wb_free(&inner);
  /* the inner message holds a bad wire type */
  wb_key(&inner, 1, 7);
  wb_ld(&m, 4, inner.b, inner.len);
  wb_big(&m, 3, 70000, 58);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  wb_free(&inner);
  /* a huge declared length */
  wb_big(&m, 3, 70000, 59);
  wb_key(&m, 2, 2);
  wb_varint(&m, (uint64_t)1 << 40);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
}

static void malformed_keys(void **state) {
  (void)state;
  wb m = {0};
  /* field number 0 */
  wb_big(&m, 3, 70000, 60);
  wb_vfield(&m, 0, 1);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  /* a known field with the wrong wire type */
  wb_big(&m, 3, 70000, 61);
  wb_fixed32(&m, 1, 5); /* `before` is a varint */
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  /* groups and undefined wire types */
  for (unsigned wt = 3; wt <= 7; wt++) {
    if (wt == 5) continue;
    wb_big(&m, 3, 70000, 62);
    wb_key(&m, 150, wt);
    wb_key(&m, 150, 4);
    check_msg(&lend__big__descriptor, &m, -1);
    wb_free(&m);
  }
  /* a field number past 2^29 - 1 */
  wb_big(&m, 3, 70000, 63);
  wb_varint(&m, (uint64_t)0x20000000 << 3);
  wb_byte(&m, 0);
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
  /* the big field's key as a five-byte varint (padded with zero groups): protobuf-c reads it */
  wb_byte(&m, 0x9a);
  wb_byte(&m, 0x80);
  wb_byte(&m, 0x80);
  wb_byte(&m, 0x80);
  wb_byte(&m, 0x00);
  wb_varint(&m, 70000);
  wb_pattern_bytes(&m, 70000, 64);
  check_msg(&lend__big__descriptor, &m, 1);
  wb_free(&m);
}

/* Keys and lengths padded past what protobuf-c reads (keys of at most five bytes, length prefixes
 * of at most five) on the big field. protobuf-c refuses these messages; the big field's key and
 * length are the only bytes of the message that the lending path does not hand to protobuf-c,
 * so a scan that read them as ordinary (up to ten-byte) varints would make crpc__unpack_lend
 * decode a message protobuf-c refuses. */
static void malformed_overlong_key(void **state) {
  (void)state;
  wb m = {0};
  /* key of field 3, wire type 2 (0x1a) in six bytes */
  wb_byte(&m, 0x9a);
  for (int i = 0; i < 4; i++) wb_byte(&m, 0x80);
  wb_byte(&m, 0x00);
  wb_varint(&m, 70000);
  wb_pattern_bytes(&m, 70000, 65);
  assert_null(protobuf_c_message_unpack(&lend__big__descriptor, NULL, m.len, m.b));
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
}

static void malformed_overlong_length(void **state) {
  (void)state;
  wb m = {0};
  /* length 70000 (0xf0 0xa2 0x04) padded to six bytes */
  wb_key(&m, 3, 2);
  wb_byte(&m, 0xf0);
  wb_byte(&m, 0xa2);
  wb_byte(&m, 0x84);
  wb_byte(&m, 0x80);
  wb_byte(&m, 0x80);
  wb_byte(&m, 0x00);
  wb_pattern_bytes(&m, 70000, 66);
  assert_null(protobuf_c_message_unpack(&lend__big__descriptor, NULL, m.len, m.b));
  check_msg(&lend__big__descriptor, &m, -1);
  wb_free(&m);
}

/* ---- the decoder's side: take, missing, space_ready ------------------------------------------*/

/* Four qualifying messages in a row, fed so that the first two and the last are assembled in the
 * decoder's buffer and the third comes whole in a feed that also ends the second and starts the
 * fourth: each assembled one is lent from its own buffer, the decoder goes on with a new one. */
static void take_frames_in_a_row(void **state) {
  (void)state;
  wb msgs[4] = {{0}};
  const ProtobufCMessageDescriptor *descs[4] = {&lend__big__descriptor, &lend3__plain3__descriptor,
                                                &lend__big__descriptor, &lend__needs_id__descriptor};
  size_t prefixes[4] = {0, 20, 3, 0};
  build_mixed(&msgs[0], 200000, 70);
  wb_vfield(&msgs[1], 1, 5);
  wb_big(&msgs[1], 2, 100000, 71);
  wb_big(&msgs[2], 3, 70000, 72);
  wb_vfield(&msgs[3], 1, 1);
  wb_big(&msgs[3], 2, 300000, 73);

  wb stream = {0};
  size_t start[5];
  for (int i = 0; i < 4; i++) {
    start[i] = stream.len;
    frame_of(&stream, msgs[i].b, msgs[i].len, prefixes[i], (uint32_t)(i + 1));
  }
  start[4] = stream.len;

  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  run r;
  run_init(&r, &d);
  for (int i = 0; i < 4; i++) {
    r.dl[i].desc = descs[i];
    r.dl[i].prefix = prefixes[i];
  }
  /* feed 1: the first 1000 bytes of frame 0 */
  size_t c1 = 1000;
  /* feed 2: the rest of frame 0 and 5000 bytes of frame 1 */
  size_t c2 = start[1] + 5000;
  /* feed 3: the rest of frame 1, frame 2 whole, and 7 bytes of frame 3 (not even its header) */
  size_t c3 = start[3] + 7;
  /* feed 4: the next 100 bytes; feed 5: the rest */
  size_t c4 = c3 + 100;
  size_t cuts[] = {0, c1, c2, c3, c4, stream.len};
  int after[] = {0, 1, 3, 3, 4}; /* frames delivered after each feed */
  for (int k = 0; k < 5; k++) {
    assert_int_equal(feed_copy(&d, &r, stream.b + cuts[k], cuts[k + 1] - cuts[k]), 0);
    assert_int_equal(r.n, after[k]);
  }
  assert_int_equal(d.len, 0);
  assert_int_equal(crpc__decoder_missing(&d), 0);
  int assembled[4] = {1, 1, 0, 1};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r.dl[i].assembled, assembled[i]);
    assert_int_equal(r.dl[i].taken, assembled[i]);
  }
  /* each assembled frame had a buffer of its own */
  assert_true(r.dl[0].buf_lo != r.dl[1].buf_lo);
  assert_true(r.dl[1].buf_lo != r.dl[3].buf_lo);
  crpc__decoder_free(&d);
  for (int i = 0; i < 4; i++) {
    ProtobufCMessage *plain = protobuf_c_message_unpack(descs[i], NULL, msgs[i].len, msgs[i].b);
    assert_non_null(plain);
    found fo = find(descs[i], msgs[i].b, msgs[i].len);
    assert_true(fo.yes);
    check_delivery(&r.dl[i], plain, &fo, prefixes[i], assembled[i]);
    protobuf_c_message_free_unpacked(plain, NULL);
  }
  run_destroy(&r);
  wb_free(&stream);
  for (int i = 0; i < 4; i++) wb_free(&msgs[i]);
}

/* A callback that only tries crpc__decoder_take (twice) and keeps what it got. */
typedef struct taker {
  crpc__decoder *dec;
  int n;
  uint8_t *got[8];
  int second_null[8];
  const uint8_t *payload[8];
  uint32_t length[8];
  int pause;
} taker;

static int take_cb(void *ud, const crpc__frame *f) {
  taker *t = ud;
  assert_true(t->n < 8);
  t->payload[t->n] = f->payload;
  t->length[t->n] = f->length;
  t->got[t->n] = crpc__decoder_take(t->dec, f);
  t->second_null[t->n] = crpc__decoder_take(t->dec, f) == NULL;
  if (t->got[t->n]) {
    /* the frame's header at the start, the payload behind it */
    assert_ptr_equal(f->payload, t->got[t->n] + CRPC__HDR_LEN);
    assert_int_equal(crpc__be32_get(t->got[t->n]), f->length);
    if (f->length) assert_int_equal(f->payload[f->length - 1], (uint8_t)(f->length * 3));
  }
  t->n++;
  return t->pause ? CRPC__DEC_PAUSE : 0;
}

static void raw_frame(wb *s, uint32_t id, size_t len) {
  uint8_t h[CRPC__HDR_LEN];
  crpc__hdr_encode(h, CRPC__F_MESSAGE, 0, id, (uint32_t)len);
  wb_raw(s, h, sizeof h);
  for (size_t i = 0; i + 1 < len; i++) wb_byte(s, (uint8_t)i);
  if (len) wb_byte(s, (uint8_t)(len * 3));
}

static void taker_free(taker *t) {
  for (int i = 0; i < t->n; i++) free(t->got[i]);
}

static int feed_take(crpc__decoder *d, taker *t, const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, p, n);
  int rc = crpc__decoder_feed(d, n ? c : NULL, n, take_cb, t);
  free(c);
  return rc;
}

static void take_from_feed_is_null(void **state) {
  (void)state;
  wb s = {0};
  raw_frame(&s, 1, 1000);
  raw_frame(&s, 2, 100000);
  raw_frame(&s, 3, 0);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  taker t = {.dec = &d};
  assert_int_equal(feed_take(&d, &t, s.b, s.len), 0);
  assert_int_equal(t.n, 3);
  for (int i = 0; i < 3; i++) {
    assert_null(t.got[i]);
    assert_true(t.second_null[i]);
  }
  assert_int_equal(d.taken, 0);
  assert_int_equal(d.len, 0);
  crpc__decoder_free(&d);
  wb_free(&s);
}

/* Split frames are handed over (once); a frame delivered from the buffer with more bytes behind
 * it (the remainder of a paused feed) is not; the decoder goes on with the next frames. */
static void take_assembled_and_paused(void **state) {
  (void)state;
  wb s = {0};
  raw_frame(&s, 1, 5000);
  size_t f1 = s.len;
  raw_frame(&s, 2, 3000);
  raw_frame(&s, 3, 40);
  raw_frame(&s, 4, 70000);
  size_t f4 = s.len;
  raw_frame(&s, 5, 10);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  taker t = {.dec = &d};
  /* frame 1 in two feeds: taken */
  assert_int_equal(feed_take(&d, &t, s.b, 100), 0);
  assert_int_equal(t.n, 0);
  assert_int_equal(crpc__decoder_missing(&d), f1 - 100);
  assert_int_equal(feed_take(&d, &t, s.b + 100, f1 - 100 + 6), 0); /* + half a header */
  assert_int_equal(t.n, 1);
  assert_non_null(t.got[0]);
  assert_true(t.second_null[0]);
  assert_int_equal(crpc__decoder_missing(&d), 0); /* header incomplete: nothing known missing */
  /* frames 2, 3 and 4 complete, frame 5 partly, pausing after each frame */
  t.pause = 1;
  assert_int_equal(feed_take(&d, &t, s.b + f1 + 6, f4 + 4 - f1 - 6), CRPC__DEC_PAUSE);
  assert_int_equal(t.n, 2);
  assert_non_null(t.got[1]); /* frame 2 was assembled: the buffer held it alone */
  assert_int_equal(crpc__decoder_missing(&d), 0); /* paused */
  /* resume: frame 3 comes from the kept remainder with frame 4 behind it */
  assert_int_equal(crpc__decoder_feed(&d, NULL, 0, take_cb, &t), CRPC__DEC_PAUSE);
  assert_int_equal(t.n, 3);
  assert_null(t.got[2]);
  assert_true(t.second_null[2]);
  assert_int_equal(t.length[2], 40);
  /* frame 4: alone in the buffer now, but with frame 5's first bytes behind it */
  assert_int_equal(crpc__decoder_feed(&d, NULL, 0, take_cb, &t), CRPC__DEC_PAUSE);
  assert_int_equal(t.n, 4);
  assert_null(t.got[3]);
  assert_int_equal(t.length[3], 70000);
  t.pause = 0;
  assert_int_equal(crpc__decoder_feed(&d, NULL, 0, take_cb, &t), 0);
  assert_int_equal(t.n, 4);
  assert_int_equal(d.len, 4);
  assert_int_equal(feed_take(&d, &t, s.b + f4 + 4, s.len - f4 - 4), 0);
  assert_int_equal(t.n, 5);
  assert_non_null(t.got[4]); /* assembled from two feeds, alone: taken */
  assert_int_equal(t.length[4], 10);
  assert_int_equal(d.len, 0);
  crpc__decoder_free(&d);
  taker_free(&t);
  wb_free(&s);
}

/* Direct reads (crpc__decoder_space_ready + crpc__decoder_commit) assemble in the buffer too;
 * missing counts down; with `ready` covering the rest, one space holds all of it. */
static void take_after_direct_reads(void **state) {
  (void)state;
  wb s = {0};
  raw_frame(&s, 1, 300000);
  size_t f1 = s.len;
  raw_frame(&s, 2, 200000);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  taker t = {.dec = &d};
  size_t n = 0;
  assert_null(crpc__decoder_space_ready(&d, 1, 1000000, &n)); /* nothing under way */
  assert_int_equal(n, 0);
  assert_int_equal(feed_take(&d, &t, s.b, 8), 0); /* not even a header */
  assert_int_equal(crpc__decoder_missing(&d), 0);
  assert_null(crpc__decoder_space(&d, 1, &n));
  assert_int_equal(feed_take(&d, &t, s.b + 8, 1000), 0);
  size_t at = 1008;
  assert_int_equal(crpc__decoder_missing(&d), f1 - at);
  /* without `ready`: the space grows by doubling, commits count down */
  int steps = 0;
  while (at < 100000) {
    uint8_t *p = crpc__decoder_space(&d, 1, &n);
    assert_non_null(p);
    assert_true(n > 0 && n <= f1 - at);
    assert_true(at + n <= 4 * at); /* grows with what arrived, not with the declared length */
    memcpy(p, s.b + at, n);
    at += n;
    assert_int_equal(crpc__decoder_commit(&d, n, take_cb, &t), 0);
    assert_int_equal(crpc__decoder_missing(&d), f1 - at);
    steps++;
  }
  assert_true(steps > 1);
  /* a `min` above what is missing: no space */
  assert_null(crpc__decoder_space(&d, f1 - at + 1, &n));
  /* with the rest ready: one space for all of it */
  uint8_t *p = crpc__decoder_space_ready(&d, 1, 10 * f1, &n);
  assert_non_null(p);
  assert_int_equal(n, f1 - at);
  memcpy(p, s.b + at, n);
  assert_int_equal(t.n, 0);
  assert_int_equal(crpc__decoder_commit(&d, n, take_cb, &t), 0);
  assert_int_equal(t.n, 1);
  assert_non_null(t.got[0]);
  assert_int_equal(crpc__decoder_missing(&d), 0);
  /* the next frame: header fed, the rest ready but only part of it read at first */
  assert_int_equal(feed_take(&d, &t, s.b + f1, CRPC__HDR_LEN + 10), 0);
  at = f1 + CRPC__HDR_LEN + 10;
  p = crpc__decoder_space_ready(&d, 1, 50000, &n);
  assert_non_null(p);
  assert_true(n >= 50000 && n <= s.len - at);
  memcpy(p, s.b + at, 50000);
  at += 50000;
  assert_int_equal(crpc__decoder_commit(&d, 50000, take_cb, &t), 0);
  assert_int_equal(crpc__decoder_missing(&d), s.len - at);
  p = crpc__decoder_space_ready(&d, 1, s.len - at, &n);
  assert_non_null(p);
  assert_int_equal(n, s.len - at);
  memcpy(p, s.b + at, n);
  assert_int_equal(crpc__decoder_commit(&d, n, take_cb, &t), 0);
  assert_int_equal(t.n, 2);
  assert_non_null(t.got[1]);
  assert_int_equal(t.length[1], 200000);
  assert_int_equal(d.len, 0);
  crpc__decoder_free(&d);
  taker_free(&t);
  wb_free(&s);
}

/* crpc__unpack_lend on a frame read by direct reads, at a prefix, as the connection does it. */
static void lend_after_direct_reads(void **state) {
  (void)state;
  wb m = {0}, fr = {0};
  build_mixed(&m, 500000, 80);
  frame_of(&fr, m.b, m.len, PREFIX, 1);
  crpc__decoder d;
  crpc__decoder_init(&d, MAXP, 0);
  run r;
  run_init(&r, &d);
  r.dl[0].desc = &lend__big__descriptor;
  r.dl[0].prefix = PREFIX;
  assert_int_equal(feed_copy(&d, &r, fr.b, 4096), 0);
  size_t at = 4096, n;
  while (at < fr.len) {
    uint8_t *p = crpc__decoder_space_ready(&d, 1, 65536, &n);
    assert_non_null(p);
    size_t k = n < fr.len - at ? n : fr.len - at;
    memcpy(p, fr.b + at, k);
    at += k;
    assert_int_equal(crpc__decoder_commit(&d, k, lend_cb, &r), 0);
  }
  assert_int_equal(r.n, 1);
  assert_true(r.dl[0].taken);
  crpc__decoder_free(&d);
  ProtobufCMessage *plain = protobuf_c_message_unpack(&lend__big__descriptor, NULL, m.len, m.b);
  found fo = find(&lend__big__descriptor, m.b, m.len);
  check_delivery(&r.dl[0], plain, &fo, PREFIX, 1);
  protobuf_c_message_free_unpacked(plain, NULL);
  run_destroy(&r);
  wb_free(&m);
  wb_free(&fr);
}

/* Every allocation crpc__unpack_lend makes, failed in turn (the adoption of the buffer, the copy
 * of the rest, protobuf-c's), with the arena's inline block free and full: the result is NULL or
 * the right message, and nothing leaks (the buffer, once taken from the decoder, must be freed
 * whichever way the decode goes: LeakSanitizer checks at exit). */
static void out_of_memory(void **state) {
  (void)state;
  wb m = {0}, fr = {0};
  build_mixed(&m, 100000, 95);
  frame_of(&fr, m.b, m.len, PREFIX, 1);
  ProtobufCMessage *plain = protobuf_c_message_unpack(&lend__big__descriptor, NULL, m.len, m.b);
  assert_non_null(plain);
  found fo = find(&lend__big__descriptor, m.b, m.len);
  assert_true(fo.yes);
  static const size_t prefills[] = {0, CRPC__ARENA_INLINE - 8};
  for (size_t pf = 0; pf < 2; pf++) {
    int baseline = 0;
    for (long nth = 1; nth < 1000 && !baseline; nth++) {
      crpc__decoder d;
      crpc__decoder_init(&d, MAXP, 0);
      run r;
      run_init(&r, &d);
      r.dl[0].desc = &lend__big__descriptor;
      r.dl[0].prefix = PREFIX;
      r.fail_nth = nth;
      r.prefill = prefills[pf];
      assert_int_equal(feed_copy(&d, &r, fr.b, 1000), 0);
      assert_int_equal(feed_copy(&d, &r, fr.b + 1000, fr.len - 1000), 0);
      assert_int_equal(r.n, 1);
      assert_true(r.dl[0].assembled);
      crpc__decoder_free(&d);
      baseline = !r.fail_hit;
      if (baseline) { /* no N-th allocation: the plain run, which lends */
        check_delivery(&r.dl[0], plain, &fo, PREFIX, 1);
        assert_true(nth > 1);
      } else if (r.dl[0].got) {
        assert_msg_equal(r.dl[0].got, plain);
      }
      run_destroy(&r);
    }
    assert_true(baseline);
  }
  protobuf_c_message_free_unpacked(plain, NULL);
  wb_free(&m);
  wb_free(&fr);
}

/* A second message lent into the same arena (the arena keeps a list of adopted buffers), then
 * the arena reset and used again. */
static void two_lends_one_arena(void **state) {
  (void)state;
  wb m = {0}, fr = {0};
  wb_big(&m, 3, 90000, 90);
  frame_of(&fr, m.b, m.len, 0, 1);
  frame_of(&fr, m.b, m.len, 0, 2);
  crpc__arena arena;
  crpc__arena_init(&arena);
  for (int round = 0; round < 2; round++) {
    crpc__decoder d;
    crpc__decoder_init(&d, MAXP, 0);
    run r;
    run_init(&r, &d);
    r.dl[0].desc = r.dl[1].desc = &lend__big__descriptor;
    r.dl[0].arena = r.dl[1].arena = &arena;
    /* both frames assembled: the second starts in the feed that ends the first */
    size_t half = fr.len / 2;
    assert_int_equal(feed_copy(&d, &r, fr.b, 100), 0);
    assert_int_equal(feed_copy(&d, &r, fr.b + 100, half), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(feed_copy(&d, &r, fr.b + half + 100, fr.len - half - 100), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.dl[0].taken && r.dl[1].taken);
    crpc__decoder_free(&d);
    for (int i = 0; i < 2; i++) {
      const Lend__Big *b = (const Lend__Big *)r.dl[i].got;
      assert_non_null(b);
      assert_true(b->has_data);
      assert_int_equal(b->data.len, 90000);
      for (size_t k = 0; k < b->data.len; k += 997) assert_int_equal(b->data.data[k], pat(k, 90));
    }
    crpc__arena_reset(&arena); /* frees both adopted buffers (LSan would see them otherwise) */
    run_destroy(&r);
  }
  crpc__arena_destroy(&arena);
  wb_free(&m);
  wb_free(&fr);
}

/* ---- split receive: explicit cases -----------------------------------------------------------*/

/* crpc__lend_split_point(desc, m, have, len) for every `have` in [lo, hi): `want`. */
static void points(const ProtobufCMessageDescriptor *desc, const wb *m, size_t len, size_t lo,
                   size_t hi, size_t want) {
  for (size_t have = lo; have < hi; have++) {
    size_t got = crpc__lend_split_point(desc, m->b, have, len);
    if (got != want)
      fail_msg("crpc__lend_split_point(have %zu of %zu) = %zu, expected %zu", have, len, got, want);
  }
}

/* Samples of [lo, hi) (both ends, and a few in between) for long ranges. */
static void points_sampled(const ProtobufCMessageDescriptor *desc, const wb *m, size_t len,
                           size_t lo, size_t hi, size_t want) {
  if (hi - lo <= 64) {
    points(desc, m, len, lo, hi, want);
    return;
  }
  points(desc, m, len, lo, lo + 8, want);
  points(desc, m, len, lo + (hi - lo) / 3, lo + (hi - lo) / 3 + 3, want);
  points(desc, m, len, hi - 8, hi, want);
}

static void split_point_qualifying(void **state) {
  (void)state;
  wb m = {0};
  wb_vfield(&m, 1, 5);
  wb_str(&m, 2, "name");
  wb_fixed32(&m, 200, 1); /* unknown */
  size_t key_at = m.len;
  wb_big(&m, 3, 70000, 1);
  size_t value_at = key_at + 1 + 3, value_end = value_at + 70000;
  wb_fixed64(&m, 5, 9);
  wb_str(&m, 7, "tail");
  /* before the value starts (its key or length incomplete, or not even reached): no */
  points(&lend__big__descriptor, &m, m.len, 0, value_at, 0);
  /* from its first byte on, as long as it is not complete: its offset */
  points_sampled(&lend__big__descriptor, &m, m.len, value_at, value_end, value_at);
  /* complete in hand: no (whatever follows) */
  points(&lend__big__descriptor, &m, m.len, value_end, m.len + 1, 0);
  wb_free(&m);

  /* proto3, after a required field (proto2), with a default, with a five-byte key */
  wb_vfield(&m, 1, 1);
  wb_big(&m, 2, 40000, 2); /* key 1 byte, length 3 */
  value_at = 2 + 1 + 3;
  wb_str(&m, 3, "x");
  points(&lend3__plain3__descriptor, &m, m.len, 0, value_at, 0);
  points_sampled(&lend3__plain3__descriptor, &m, m.len, value_at, m.len - 3, value_at);
  points_sampled(&lend__needs_id__descriptor, &m, m.len, value_at, m.len - 3, value_at);
  wb_free(&m);
  wb_big(&m, 1, 40000, 3);
  points_sampled(&lend__dflt__descriptor, &m, m.len, 4, m.len, 4);
  wb_free(&m);
  static const uint8_t key5[] = {0x9a, 0x80, 0x80, 0x80, 0x00};
  wb_raw(&m, key5, sizeof key5);
  wb_varint(&m, 70000);
  wb_pattern_bytes(&m, 70000, 4);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, 8, 0);
  points_sampled(&lend__big__descriptor, &m, m.len, 8, m.len, 8);
  wb_free(&m);
}

/* Sizes: the value from 32 KiB on, the rest of the message (all but the value, its key and its
 * length) up to 16 KiB, as the message's full length `len` says. */
static void split_point_thresholds(void **state) {
  (void)state;
  wb m = {0};
  wb_big(&m, 3, 32767, 5); /* key 1 byte, length 3: the value at 4 */
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_big(&m, 3, 32768, 6);
  points(&lend__big__descriptor, &m, m.len, 0, 4, 0);
  points_sampled(&lend__big__descriptor, &m, m.len, 4, m.len, 4);
  /* what follows the value is only known from len: 16384 bytes of rest, then 16385 */
  points(&lend__big__descriptor, &m, m.len + 16384, 4, 40, 4);
  points(&lend__big__descriptor, &m, m.len + 16385, 4, 40, 0);
  wb_free(&m);
  /* the rest before the value: a name of key 1 + length 2 + 16381 = 16384 bytes, then one more */
  char *s = malloc(20000);
  assert_non_null(s);
  memset(s, 'n', 19999);
  s[16381] = '\0';
  wb_str(&m, 2, s);
  size_t v = m.len + 4;
  wb_big(&m, 3, 100000, 7);
  assert_int_equal(m.len - 100000 - 4, 16384);
  points(&lend__big__descriptor, &m, m.len, v, v + 5, v);
  wb_free(&m);
  s[16381] = 'n';
  s[16382] = '\0';
  wb_str(&m, 2, s);
  v = m.len + 4;
  wb_big(&m, 3, 100000, 8);
  points(&lend__big__descriptor, &m, m.len, v, v + 5, 0);
  wb_free(&m);
  free(s);
}

/* Values that are not to be lent: not bytes, repeated, oneof, required, unknown. */
static void split_point_not_lendable(void **state) {
  (void)state;
  wb m = {0}, sub = {0};
  char *s = malloc(70001);
  assert_non_null(s);
  memset(s, 's', 70000);
  s[70000] = '\0';
  wb_str(&m, 1, s); /* a string */
  points_sampled(&lend__not_bytes__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_str(&sub, 2, s); /* a message (Inner.s) */
  wb_ld(&m, 4, sub.b, sub.len);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_free(&sub);
  for (uint32_t i = 0; i < 30000; i++) wb_varint(&sub, i); /* packed repeated */
  wb_ld(&m, 6, sub.b, sub.len);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_free(&sub);
  wb_big(&m, 77, 70000, 9); /* unknown */
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_big(&m, 1, 70000, 10); /* `before`, an int32 */
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_big(&m, 1, 70000, 11);
  points_sampled(&lend__many__descriptor, &m, m.len, 0, m.len + 1, 0);     /* repeated */
  points_sampled(&lend3__many3__descriptor, &m, m.len, 0, m.len + 1, 0);
  points_sampled(&lend__choice__descriptor, &m, m.len, 0, m.len + 1, 0);   /* oneof */
  points_sampled(&lend3__choice3__descriptor, &m, m.len, 0, m.len + 1, 0);
  points_sampled(&lend__required__descriptor, &m, m.len, 0, m.len + 1, 0); /* required */
  wb_free(&m);
  /* the first incomplete value is a small string, though a big bytes field follows */
  wb_str(&m, 2, "a name of some length");
  wb_big(&m, 3, 70000, 12);
  points(&lend__big__descriptor, &m, m.len, 0, 20, 0);
  wb_free(&m);
  free(s);
}

static void split_point_malformed(void **state) {
  (void)state;
  wb m = {0};
  /* the big field's key in six bytes, its length in six bytes */
  wb_byte(&m, 0x9a);
  for (int i = 0; i < 4; i++) wb_byte(&m, 0x80);
  wb_byte(&m, 0x00);
  wb_varint(&m, 70000);
  wb_pattern_bytes(&m, 70000, 13);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  wb_key(&m, 3, 2);
  static const uint8_t len6[] = {0xf0, 0xa2, 0x84, 0x80, 0x80, 0x00};
  wb_raw(&m, len6, sizeof len6);
  wb_pattern_bytes(&m, 70000, 14);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  /* a varint of eleven bytes before it */
  wb_key(&m, 1, 0);
  for (int i = 0; i < 10; i++) wb_byte(&m, 0xff);
  wb_byte(&m, 0x01);
  wb_big(&m, 3, 70000, 15);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  /* groups and undefined wire types before it */
  for (unsigned wt = 3; wt <= 7; wt++) {
    if (wt == 5) continue;
    wb_key(&m, 150, wt);
    wb_big(&m, 3, 70000, 16);
    points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
    wb_free(&m);
  }
  /* its length past the end of the message */
  wb_key(&m, 3, 2);
  wb_varint(&m, 70001);
  wb_pattern_bytes(&m, 70000, 17);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
  /* a length-delimited field before it running past the end */
  wb_key(&m, 2, 2);
  wb_varint(&m, 1000000);
  wb_big(&m, 3, 70000, 18);
  points_sampled(&lend__big__descriptor, &m, m.len, 0, m.len + 1, 0);
  wb_free(&m);
}

/* A message of type Big split where its big value begins, delivered with max_depth 1 and 2 (the
 * nested `inner` is at depth 2): refused, then decoded; the joined path likewise. */
static void split_depth(void **state) {
  (void)state;
  wb m = {0}, twice = {0};
  build_mixed(&m, 100000, 20);
  found fo = find(&lend__big__descriptor, m.b, m.len);
  assert_true(fo.yes);
  wb_big(&twice, 3, 10, 21);
  wb_raw(&twice, m.b, m.len); /* the big field twice: joined */
  size_t twice_at = (twice.len - m.len) + fo.bytes_at;
  for (int heap = 0; heap < 2; heap++) {
    for (unsigned depth = 1; depth <= 2; depth++) {
      for (int joined = 0; joined < 2; joined++) {
        crpc__arena arena;
        crpc__arena_init(&arena);
        sdelivery s;
        memset(&s, 0, sizeof s);
        s.desc = &lend__big__descriptor;
        s.arena = heap ? NULL : &arena;
        s.max_depth = depth;
        const wb *msg = joined ? &twice : &m;
        deliver_split(&s, msg->b, msg->len, joined ? twice_at : fo.bytes_at, 100, 0);
        if (depth == 1) {
          assert_int_equal(s.rc, -1);
          assert_false(s.taken);
        } else {
          assert_int_equal(s.rc, 0);
          assert_int_equal(s.taken, !joined);
          ProtobufCMessage *plain =
              protobuf_c_message_unpack(&lend__big__descriptor, NULL, msg->len, msg->b);
          assert_non_null(plain);
          assert_msg_equal(s.got, plain);
          protobuf_c_message_free_unpacked(plain, NULL);
        }
        if (heap) free_heap_result(s.got);
        crpc__arena_destroy(&arena);
      }
    }
  }
  wb_free(&m);
  wb_free(&twice);
}

/* Every allocation crpc__unpack_split makes, failed in turn, with an arena (its blocks,
 * protobuf-c's through it, the adoption of the tail) and without (the rest's copy, the joined
 * copy): NULL or the right message, and nothing leaks or is freed twice. Lent and joined. */
static void split_out_of_memory(void **state) {
  (void)state;
  wb m = {0}, twice = {0};
  build_mixed(&m, 100000, 22);
  found fo = find(&lend__big__descriptor, m.b, m.len);
  assert_true(fo.yes);
  wb_big(&twice, 3, 10, 23);
  wb_raw(&twice, m.b, m.len);
  size_t twice_at = (twice.len - m.len) + fo.bytes_at;
  for (int heap = 0; heap < 2; heap++)
    for (int joined = 0; joined < 2; joined++)
      for (size_t pf = 0; pf < 2; pf++) {
        const wb *msg = joined ? &twice : &m;
        ProtobufCMessage *plain =
            protobuf_c_message_unpack(&lend__big__descriptor, NULL, msg->len, msg->b);
        assert_non_null(plain);
        int baseline = 0;
        for (long nth = 1; nth < 1000 && !baseline; nth++) {
          crpc__arena arena;
          crpc__arena_init(&arena);
          if (pf) assert_non_null(crpc__arena_alloc(&arena, CRPC__ARENA_INLINE - 8));
          sdelivery s;
          memset(&s, 0, sizeof s);
          s.desc = &lend__big__descriptor;
          s.arena = heap ? NULL : &arena;
          s.max_depth = SPLIT_DEPTH;
          s.fail_nth = nth;
          deliver_split(&s, msg->b, msg->len, joined ? twice_at : fo.bytes_at, 0, 0);
          baseline = !s.fail_hit;
          if (baseline) {
            assert_int_equal(s.rc, 0);
            assert_int_equal(s.taken, !joined);
            assert_true(nth > 1);
          }
          if (s.got) assert_msg_equal(s.got, plain);
          if (heap) free_heap_result(s.got);
          crpc__arena_destroy(&arena);
        }
        assert_true(baseline);
        protobuf_c_message_free_unpacked(plain, NULL);
      }
  wb_free(&m);
  wb_free(&twice);
}

/* The client's chain without a connection: a STATUS frame (OK, with and without a text) carrying a
 * response arrives in pieces; the point comes from what is in hand (crpc__status_decode of the
 * part, crpc__lend_split_point, as crpc__call_split_at does), the decoder splits there, and the
 * delivered frame's head decodes as a STATUS whose message part crpc__unpack_split completes. */
typedef struct chain {
  crpc__decoder *dec;
  crpc__arena *arena;
  int n, rc, taken;
  ProtobufCMessage *got;
  const uint8_t *tail;
} chain;

static int chain_cb(void *ud, const crpc__frame *f) {
  chain *c = ud;
  c->n++;
  assert_non_null(f->tail);
  crpc__status_hdr st;
  assert_int_equal(crpc__status_decode(f, &st), 0);
  assert_int_equal(st.code, 0);
  assert_non_null(st.message);
  assert_true(st.message + st.message_len == f->payload + f->head_len);
  c->tail = f->tail;
  c->rc = crpc__unpack_split(&lend__big__descriptor, c->arena, NULL, st.message, st.message_len,
                             c->dec, f, 0, &c->got);
  c->taken = c->dec->tail_taken;
  return 0;
}

static void split_status_chain(void **state) {
  (void)state;
  wb m = {0};
  build_mixed(&m, 1000000, 24);
  ProtobufCMessage *plain = protobuf_c_message_unpack(&lend__big__descriptor, NULL, m.len, m.b);
  assert_non_null(plain);
  static const char *texts[] = {"", "fine"};
  for (int heap = 0; heap < 2; heap++)
    for (int t = 0; t < 2; t++) {
      size_t tl = strlen(texts[t]);
      size_t fixed = crpc__status_fixed_size(tl, 0, 0);
      size_t plen = fixed + m.len;
      uint8_t *fr = malloc(CRPC__HDR_LEN + plen);
      assert_non_null(fr);
      crpc__hdr_encode(fr, CRPC__F_STATUS, CRPC__FL_MESSAGE, 5, (uint32_t)plen);
      uint8_t *p = crpc__status_fixed_encode(fr + CRPC__HDR_LEN, 0, texts[t], (uint32_t)tl, NULL, 0,
                                             NULL, 0);
      memcpy(p, m.b, m.len);
      crpc__decoder d;
      crpc__decoder_init(&d, MAXP, 0);
      crpc__arena arena;
      crpc__arena_init(&arena);
      chain c = {&d, heap ? NULL : &arena, 0, 0, 0, NULL, NULL};
      size_t in = 65536;
      assert_int_equal(crpc__decoder_feed(&d, fr, in, chain_cb, &c), 0);
      /* what crpc__call_split_at does with the bytes in hand */
      crpc__frame f;
      assert_int_equal(crpc__hdr_decode(d.buf, &f), 0);
      size_t unit_len = CRPC__HDR_LEN + f.length;
      f.payload = d.buf + CRPC__HDR_LEN;
      f.length = (uint32_t)(d.len - CRPC__HDR_LEN);
      crpc__status_hdr st;
      assert_int_equal(crpc__status_decode(&f, &st), 0);
      size_t msg_at = (size_t)(st.message - d.buf);
      assert_int_equal(msg_at, CRPC__HDR_LEN + fixed);
      size_t at = crpc__lend_split_point(&lend__big__descriptor, st.message, st.message_len,
                                         unit_len - msg_at);
      found fo = find(&lend__big__descriptor, m.b, m.len);
      assert_int_equal(at, fo.bytes_at);
      assert_int_equal(crpc__decoder_split(&d, msg_at + at), 0);
      size_t pos = in, n;
      while (pos < CRPC__HDR_LEN + plen) {
        uint8_t *q = crpc__decoder_space_ready(&d, 65536, 65536, &n);
        assert_non_null(q);
        memcpy(q, fr + pos, n);
        pos += n;
        assert_int_equal(crpc__decoder_commit(&d, n, chain_cb, &c), 0);
      }
      assert_int_equal(c.n, 1);
      crpc__decoder_free(&d);
      free(fr);
      assert_int_equal(c.rc, 0);
      assert_true(c.taken);
      const Lend__Big *b = (const Lend__Big *)c.got;
      assert_ptr_equal(b->data.data, c.tail);
      assert_msg_equal(c.got, plain);
      if (heap) protobuf_c_message_free_unpacked(c.got, NULL);
      crpc__arena_destroy(&arena);
    }
  protobuf_c_message_free_unpacked(plain, NULL);
  wb_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(p2_only_data),
      cmocka_unit_test(p2_mixed),
      cmocka_unit_test(p2_orders),
      cmocka_unit_test(p2_nested_merge),
      cmocka_unit_test(p2_required_bytes),
      cmocka_unit_test(p2_other_required),
      cmocka_unit_test(p2_oneof),
      cmocka_unit_test(p2_repeated),
      cmocka_unit_test(p2_twice),
      cmocka_unit_test(p2_default),
      cmocka_unit_test(p2_largest_not_bytes),
      cmocka_unit_test(p2_thresholds),
      cmocka_unit_test(p3_singular),
      cmocka_unit_test(p3_oneof_repeated),
      cmocka_unit_test(malformed_truncated),
      cmocka_unit_test(malformed_varint),
      cmocka_unit_test(malformed_lengths),
      cmocka_unit_test(malformed_keys),
      cmocka_unit_test(malformed_overlong_key),
      cmocka_unit_test(malformed_overlong_length),
      cmocka_unit_test(take_frames_in_a_row),
      cmocka_unit_test(take_from_feed_is_null),
      cmocka_unit_test(take_assembled_and_paused),
      cmocka_unit_test(take_after_direct_reads),
      cmocka_unit_test(lend_after_direct_reads),
      cmocka_unit_test(out_of_memory),
      cmocka_unit_test(two_lends_one_arena),
      cmocka_unit_test(split_point_qualifying),
      cmocka_unit_test(split_point_thresholds),
      cmocka_unit_test(split_point_not_lendable),
      cmocka_unit_test(split_point_malformed),
      cmocka_unit_test(split_depth),
      cmocka_unit_test(split_out_of_memory),
      cmocka_unit_test(split_status_chain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
