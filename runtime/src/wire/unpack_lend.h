/* Decoding a large message without copying its large bytes field (see unpack_lend.c). */
#ifndef CRPC_UNPACK_LEND_H
#define CRPC_UNPACK_LEND_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/arena.h"
#include "wire/frame.h"

/* Messages from this size on are worth the scan. */
#define CRPC__LEND_MIN 65536

/* protobuf_c_message_unpack(desc, &arena->pb, len, data), where data lies in the payload of
 * frame f being delivered by dec; except that when that frame sits in the decoder's own buffer and the message carries one large singular bytes field, the
 * buffer moves into the arena (crpc__decoder_take + crpc__arena_adopt) and the field points into
 * it instead of being copied. The result is the same message either way and lives until the
 * arena is reset. NULL when the bytes do not decode (or out of memory), as protobuf-c. */
ProtobufCMessage *crpc__unpack_lend_large(const ProtobufCMessageDescriptor *desc,
                                          crpc__arena *arena, size_t len, const uint8_t *data,
                                          crpc__decoder *dec, const crpc__frame *f);
static inline ProtobufCMessage *crpc__unpack_lend(const ProtobufCMessageDescriptor *desc,
                                                  crpc__arena *arena, size_t len,
                                                  const uint8_t *data, crpc__decoder *dec,
                                                  const crpc__frame *f) {
  if (len < CRPC__LEND_MIN) return protobuf_c_message_unpack(desc, &arena->pb, len, data);
  return crpc__unpack_lend_large(desc, arena, len, data, dec, f);
}

/* Split receive (client responses). Where a message of type desc, of which the first `have` of
 * its `len` bytes are in hand, is worth splitting: the offset of the value of a large bytes field
 * that starts in hand and is not complete yet, when it qualifies as above; else 0. */
size_t crpc__lend_split_point(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                              size_t have, size_t len);
/* Decodes a message received split (frame f from dec, f->tail set): head[0..head_len) is the
 * part in the frame's head, which normally ends where the large value starts; the rest is in
 * f->tail. When the message qualifies the tail is taken from the decoder and becomes the field's
 * block (adopted by arena, or with arena NULL, allocated with malloc like the rest of the message,
 * which is then the caller's to free with protobuf_c_message_free_unpacked(m, NULL));
 * protobuf-c allocates from arena's pb, or with arena NULL from `heap` (a malloc allocator such as
 * crpc__heap_pb's; NULL: protobuf-c's default); otherwise
 * the parts are joined and decoded as usual. The nesting depth is checked as
 * crpc__pb_depth_check does. 0 with *out set, or -1 (malformed, too deep, out of memory). */
int crpc__unpack_split(const ProtobufCMessageDescriptor *desc, crpc__arena *arena,
                       ProtobufCAllocator *heap, const uint8_t *head, size_t head_len, crpc__decoder *dec,
                       const crpc__frame *f, unsigned max_depth, ProtobufCMessage **out);

/* The scan on its own, for tests: 1 when data (a message of type desc) has a field that qualifies,
 * with the offsets of its key (*field_at), its bytes (*bytes_at, *bytes_len) and its descriptor. */
int crpc__lend_find(const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data,
                    size_t *field_at, size_t *bytes_at, size_t *bytes_len,
                    const ProtobufCFieldDescriptor **field);

#endif
