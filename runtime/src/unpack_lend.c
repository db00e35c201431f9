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
#include "unpack_lend.h"

#include <stdlib.h>
#include <string.h>

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

/* What the walk found: the largest length-delimited field, and how often its number occurs. */
typedef struct scan {
  size_t key_at, bytes_at, bytes_len;
  uint32_t number;
  unsigned count; /* occurrences of `number` (second pass) */
} scan;

/* Walks the top-level fields: the first pass (counting 0) finds the largest length-delimited
 * field, the second counts its number's occurrences. -1 on anything the plain path should handle
 * (malformed bytes, groups). */
static int walk(const uint8_t *p, size_t len, scan *best, int counting) {
  size_t pos = 0;
  while (pos < len) {
    size_t key_at = pos;
    uint64_t key, n;
    if (varint(p, len, &pos, &key) != 0) return -1;
    uint64_t number = key >> 3;
    if (number == 0 || number > 0x1fffffff) return -1;
    if (counting && number == best->number) best->count++;
    switch (key & 7) {
      case 0:
        if (varint(p, len, &pos, &n) != 0) return -1;
        break;
      case 1:
        if (len - pos < 8) return -1;
        pos += 8;
        break;
      case 5:
        if (len - pos < 4) return -1;
        pos += 4;
        break;
      case 2:
        if (varint(p, len, &pos, &n) != 0 || n > len - pos) return -1;
        if (!counting && n > best->bytes_len) {
          best->key_at = key_at;
          best->bytes_at = pos;
          best->bytes_len = (size_t)n;
          best->number = (uint32_t)number;
        }
        pos += (size_t)n;
        break;
      default: /* groups (3, 4) and undefined wire types */
        return -1;
    }
  }
  return 0;
}

int crpc__lend_find(const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data,
                    size_t *field_at, size_t *bytes_at, size_t *bytes_len,
                    const ProtobufCFieldDescriptor **field) {
  if (len < CRPC__LEND_MIN) return 0;
  scan s = {0};
  if (walk(data, len, &s, 0) != 0 || s.bytes_len < CRPC__LEND_FIELD) return 0;
  if (len - (s.bytes_at - s.key_at) - s.bytes_len > CRPC__LEND_REST) return 0;
  if (walk(data, len, &s, 1) != 0 || s.count != 1) return 0;
  const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, s.number);
  if (!fd || fd->type != PROTOBUF_C_TYPE_BYTES || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
      (fd->label != PROTOBUF_C_LABEL_OPTIONAL && fd->label != PROTOBUF_C_LABEL_NONE))
    return 0;
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
  ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((char *)m + fd->offset);
  bd->data = bytes;
  bd->len = bytes_len;
  if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset)
    *(protobuf_c_boolean *)((char *)m + fd->quantifier_offset) = 1;
  return m;
}
