/* Decoding a large message without copying its large bytes field (see unpack_lend.c). */
#ifndef CRPC_UNPACK_LEND_H
#define CRPC_UNPACK_LEND_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "arena.h"
#include "frame.h"

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

/* The scan on its own, for tests: 1 when data (a message of type desc) has a field that qualifies,
 * with the offsets of its key (*field_at), its bytes (*bytes_at, *bytes_len) and its descriptor. */
int crpc__lend_find(const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data,
                    size_t *field_at, size_t *bytes_at, size_t *bytes_len,
                    const ProtobufCFieldDescriptor **field);

#endif
