/* Large bytes fields decoded in place.
 *
 * protobuf-c copies every bytes field out of the input into memory of its allocator. For a 1 MiB
 * payload that copy is as much work as a kernel read, and the input already sits in a buffer of
 * its own: the decoder assembled the frame there (large frames are read straight into it). So when
 * a message is mostly one bytes field, that buffer is handed to the call's arena and the field is
 * made to point into it:
 *
 *   1. scan the top-level fields (keys and lengths only) for the largest length-delimited one;
 *   2. it qualifies when it occurs once, its descriptor is a singular bytes field outside any
 *      oneof and not `required`, and the rest of the message is small;
 *   3. protobuf-c unpacks the rest (the bytes before the field's key and after its value, copied
 *      next to each other in the arena), which gives exactly the message minus that field, since
 *      a singular field that occurs once has the same value wherever it sits;
 *   4. the field is set (and its has_ flag, when it has one) to the bytes in the buffer.
 *
 * Anything else (small messages, repeated or oneof fields, groups, malformed bytes, a frame that
 * is not in the decoder's buffer) goes through protobuf_c_message_unpack unchanged, which also
 * reports malformed input. */
#include "wire/unpack_lend.h"

#include <stdlib.h>
#include <string.h>

#include "wire/pbdepth.h"

/* A field lends its bytes from this length on, when the rest of the message is at most
 * CRPC__LEND_REST bytes (that rest is copied once more). */
#define CRPC__LEND_FIELD (CRPC__LEND_MIN / 2)
#define CRPC__LEND_REST 16384

/* Reads a varint ending before len: 0, or -1 when it does not. */
static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned i = 0; i < 10 && *pos < len; i++) {
    uint8_t b = p[(*pos)++];
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

/* Keys and length prefixes as protobuf-c reads them: at most five bytes. Anything longer is
 * refused here (the message then takes the plain path, where protobuf-c refuses it too): the
 * lent field's key and length are the only bytes protobuf-c does not see itself. */
static int varint32(const uint8_t *p, size_t len, size_t *pos, uint64_t *out) {
  size_t start = *pos;
  if (varint(p, len, pos, out) != 0 || *pos - start > 5 || *out > UINT32_MAX) return -1;
  return 0;
}

/* The largest length-delimited top-level field. */
typedef struct scan {
  size_t key_at, bytes_at, bytes_len;
  uint64_t number;
} scan;

static int field_value(const uint8_t *p, size_t end, size_t *pos, uint64_t wt, uint64_t *n);

/* Reads the field at *pos, which must end by len, and leaves *pos after it: its key, its key's
 * offset, and for a length-delimited one the value's offset and length. -1 on anything the plain
 * path should handle (malformed bytes, field 0, groups). */
static int next_field(const uint8_t *p, size_t len, size_t *pos, uint64_t *key, size_t *value_at,
                      uint64_t *n) {
  *n = 0;
  if (varint32(p, len, pos, key) != 0 || *key >> 3 == 0 ||
      field_value(p, len, pos, *key & 7, n) != 0)
    return -1;
  *value_at = *pos;
  if ((*key & 7) == 2) {
    if (*n > len - *pos) return -1;
    *pos += (size_t)*n;
  }
  return 0;
}

static int largest(const uint8_t *p, size_t len, scan *best) {
  size_t pos = 0;
  while (pos < len) {
    size_t key_at = pos, value_at;
    uint64_t key, n;
    if (next_field(p, len, &pos, &key, &value_at, &n) != 0) return -1;
    if ((key & 7) == 2 && n > best->bytes_len)
      *best = (scan){key_at, value_at, (size_t)n, key >> 3};
  }
  return 0;
}

static int count_number(const uint8_t *p, size_t len, uint64_t number);

/* The field numbered `number` when it is a singular bytes field outside any oneof and not
 * required (so that leaving it out of what protobuf-c sees changes nothing else), else NULL. */
static const ProtobufCFieldDescriptor *lendable(const ProtobufCMessageDescriptor *desc,
                                               uint64_t number) {
  if (number > 0x1fffffff) return NULL;
  const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
  if (!fd || fd->type != PROTOBUF_C_TYPE_BYTES || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
      (fd->label != PROTOBUF_C_LABEL_OPTIONAL && fd->label != PROTOBUF_C_LABEL_NONE))
    return NULL;
  return fd;
}

/* Points the lent field of m at bytes. */
static void set_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, uint8_t *bytes,
                      size_t len) {
  ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)m + fd->offset);
  bd->data = bytes;
  bd->len = len;
  if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset)
    *(protobuf_c_boolean *)((char *)m + fd->quantifier_offset) = 1;
}

int crpc__lend_find(const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data,
                    size_t *field_at, size_t *bytes_at, size_t *bytes_len,
                    const ProtobufCFieldDescriptor **field) {
  if (len < CRPC__LEND_MIN) return 0;
  scan s = {0};
  if (largest(data, len, &s) != 0 || s.bytes_len < CRPC__LEND_FIELD) return 0;
  if (len - (s.bytes_at - s.key_at) - s.bytes_len > CRPC__LEND_REST) return 0;
  if (count_number(data, len, s.number) != 1) return 0;
  const ProtobufCFieldDescriptor *fd = lendable(desc, s.number);
  if (!fd) return 0;
  *field_at = s.key_at;
  *bytes_at = s.bytes_at;
  *bytes_len = s.bytes_len;
  *field = fd;
  return 1;
}

ProtobufCMessage *crpc__unpack_lend_large(const ProtobufCMessageDescriptor *desc,
                                          crpc__arena *arena, size_t len, const uint8_t *data,
                                          crpc__decoder *dec, const crpc__frame *f) {
  size_t field_at, bytes_at, bytes_len;
  const ProtobufCFieldDescriptor *fd;
  if (!crpc__lend_find(desc, len, data, &field_at, &bytes_at, &bytes_len, &fd))
    return protobuf_c_message_unpack(desc, &arena->pb, len, data);
  uint8_t *block = crpc__decoder_take(dec, f);
  if (!block) return protobuf_c_message_unpack(desc, &arena->pb, len, data);
  if (crpc__arena_adopt(arena, block) != 0) {
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &arena->pb, len, data);
    free(block); /* after the copy: data lies in it */
    return m;
  }
  /* data lies inside block: the field's bytes are at block + (data - block) + bytes_at. */
  uint8_t *bytes = block + (size_t)(data - block) + bytes_at;
  size_t tail = len - bytes_at - bytes_len;
  uint8_t *rest = crpc__arena_alloc(arena, field_at + tail);
  if (!rest) return protobuf_c_message_unpack(desc, &arena->pb, len, data);
  memcpy(rest, data, field_at);
  memcpy(rest + field_at, data + bytes_at + bytes_len, tail);
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &arena->pb, field_at + tail, rest);
  if (!m) return NULL;
  set_field(m, fd, bytes, bytes_len);
  return m;
}

/* ---- Split receive ---------------------------------------------------------------------------
 * A client response can be split while it arrives (crpc__decoder_split): the decoder keeps the
 * bytes from the start of the large field's value on in a block of their own, which then becomes
 * the field's allocation, so the response can belong to the caller (freed with free()) and still
 * skip the copy. */

/* Skips one field's value of wire type wt at *pos, which must end by `end`: 0 or -1. For
 * length-delimited values *n is their length and *pos is left at their start. */
static int field_value(const uint8_t *p, size_t end, size_t *pos, uint64_t wt, uint64_t *n) {
  switch (wt) {
    case 0: return varint(p, end, pos, n);
    case 1:
      if (end - *pos < 8) return -1;
      *pos += 8;
      return 0;
    case 5:
      if (end - *pos < 4) return -1;
      *pos += 4;
      return 0;
    case 2: return varint32(p, end, pos, n);
    default: return -1;
  }
}

size_t crpc__lend_split_point(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                              size_t have, size_t len) {
  size_t pos = 0;
  while (pos < have) {
    size_t key_at = pos;
    uint64_t key, n = 0;
    if (varint32(msg, have, &pos, &key) != 0 || field_value(msg, have, &pos, key & 7, &n) != 0)
      return 0;
    if ((key & 7) != 2) continue;
    if (n > len - pos) return 0; /* malformed: protobuf-c will say so */
    if (n <= have - pos) {
      pos += (size_t)n;
      continue;
    }
    /* The first value that is not in hand yet: split there if it is the kind to lend. */
    if (n < CRPC__LEND_FIELD || len - (size_t)n - (pos - key_at) > CRPC__LEND_REST ||
        !lendable(desc, key >> 3))
      return 0;
    return pos;
  }
  return 0;
}

/* Walks the complete fields of p[0..len): -1 when malformed, else how many have `number`. */
static int count_number(const uint8_t *p, size_t len, uint64_t number) {
  size_t pos = 0, value_at;
  int count = 0;
  while (pos < len) {
    uint64_t key, n;
    if (next_field(p, len, &pos, &key, &value_at, &n) != 0) return -1;
    if (key >> 3 == number) count++;
  }
  return count;
}

/* The general path for a split message: put it back together and let protobuf-c decode it. */
static int unsplit(const ProtobufCMessageDescriptor *desc, crpc__arena *arena,
                   ProtobufCAllocator *heap, const uint8_t *head,
                   size_t head_len, const uint8_t *tail, size_t tail_len, unsigned max_depth,
                   ProtobufCMessage **out) {
  size_t len = head_len + tail_len;
  uint8_t *all = arena ? crpc__arena_alloc(arena, len) : malloc(len ? len : 1);
  if (!all) return -1;
  memcpy(all, head, head_len);
  memcpy(all + head_len, tail, tail_len);
  *out = crpc__pb_depth_check(desc, all, len, max_depth) != 0
             ? NULL
             : protobuf_c_message_unpack(desc, arena ? &arena->pb : heap, len, all);
  if (!arena) free(all);
  return *out ? 0 : -1;
}

int crpc__unpack_split(const ProtobufCMessageDescriptor *desc, crpc__arena *arena,
                       ProtobufCAllocator *heap, const uint8_t *head, size_t head_len, crpc__decoder *dec,
                       const crpc__frame *f, unsigned max_depth, ProtobufCMessage **out) {
  *out = NULL;
  const uint8_t *tail = f->tail;
  size_t tail_len = f->length - f->head_len;
  /* The head must end just where a length-delimited value starts. */
  size_t pos = 0, key_at = 0;
  uint64_t key = 0, n = 0;
  int found = 0;
  while (pos < head_len) {
    key_at = pos;
    if (varint32(head, head_len, &pos, &key) != 0 || field_value(head, head_len, &pos, key & 7, &n) != 0)
      break;
    if ((key & 7) != 2) continue;
    if (pos == head_len) {
      found = 1;
      break;
    }
    if (n > head_len - pos) break;
    pos += (size_t)n;
  }
  const ProtobufCFieldDescriptor *fd = found ? lendable(desc, key >> 3) : NULL;
  if (!fd || n > tail_len)
    return unsplit(desc, arena, heap, head, head_len, tail, tail_len, max_depth, out);
  size_t bytes_len = (size_t)n;
  const uint8_t *suffix = tail + bytes_len;
  size_t suffix_len = tail_len - bytes_len;
  size_t rest_len = key_at + suffix_len;
  if (rest_len > CRPC__LEND_REST || count_number(head, key_at, key >> 3) != 0 ||
      count_number(suffix, suffix_len, key >> 3) != 0)
    return unsplit(desc, arena, heap, head, head_len, tail, tail_len, max_depth, out);

  uint8_t *rest = arena ? crpc__arena_alloc(arena, rest_len) : malloc(rest_len ? rest_len : 1);
  if (!rest) return -1;
  memcpy(rest, head, key_at);
  memcpy(rest + key_at, suffix, suffix_len);
  ProtobufCMessage *m = NULL;
  if (crpc__pb_depth_check(desc, rest, rest_len, max_depth) == 0)
    m = protobuf_c_message_unpack(desc, arena ? &arena->pb : heap, rest_len, rest);
  if (!arena) free(rest);
  if (!m) return -1;
  /* The value becomes the field's own block: the arena's, or the caller's with the message. */
  uint8_t *block = crpc__decoder_take_tail(dec, f);
  if (!block || (arena && crpc__arena_adopt(arena, block) != 0)) {
    if (block) free(block); /* not reached in practice: the frame is the one being delivered */
    protobuf_c_message_free_unpacked(m, arena ? &arena->pb : heap);
    return -1;
  }
  set_field(m, fd, block, bytes_len);
  *out = m;
  return 0;
}
