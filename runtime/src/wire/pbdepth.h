/* Nesting-depth check for protobuf payloads, run before protobuf_c_message_unpack().
 *
 * protobuf-c unpacks a sub-message by recursing, once per level and without a limit, so a hostile
 * payload nesting a message type inside itself a million times (a few MB of bytes) exhausts the
 * stack. crpc__pb_depth_check() walks the wire bytes first, iteratively, and refuses anything
 * nested deeper than a limit. Pure function: no I/O, no global state, no heap, no recursion; its
 * own stack use is a fixed array (see below), whatever the input. */
#ifndef CRPC_PBDEPTH_H
#define CRPC_PBDEPTH_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The limit used when max_depth is 0. */
#define CRPC__PB_DEFAULT_MAX_DEPTH 64
/* Larger max_depth values are clamped to this. protobuf-c would recurse as deep as the limit
 * allows, so a limit much higher than this protects nothing. */
#define CRPC__PB_MAX_DEPTH_CAP 1024

/* Results (all negative; 0 is success). */
enum crpc__pb_result {
  CRPC__PB_OK = 0,
  CRPC__PB_TOO_DEEP = -1,   /* nested deeper than max_depth */
  CRPC__PB_MALFORMED = -2   /* not walkable as protobuf wire format */
};

/* Checks that the `len` bytes at `data`, read as a message of type `desc`, nest at most
 * `max_depth` message levels: the top-level message is depth 1, each sub-message one more.
 * max_depth 0 means CRPC__PB_DEFAULT_MAX_DEPTH; values above CRPC__PB_MAX_DEPTH_CAP are clamped
 * to it. `desc` must not be NULL; `data` may be NULL when `len` is 0 (an empty message, depth 1).
 *
 * Only a length-delimited field whose number `desc` knows with type PROTOBUF_C_TYPE_MESSAGE is
 * descended into (map entries are such messages); every other field, unknown field numbers
 * included, is skipped by its wire type. A known message field sent with another wire type is
 * skipped too (protobuf-c rejects it; it cannot nest). Nothing else about the fields is checked:
 * 0 does not promise that protobuf-c will accept the bytes, only that it will not recurse deeper
 * than max_depth.
 *
 * Returns 0, CRPC__PB_TOO_DEEP as soon as a sub-message would open at depth max_depth + 1 (the
 * rest of the payload is not read), or CRPC__PB_MALFORMED when the bytes cannot be walked up to
 * that point: a key or varint running past its message or longer than 10 bytes or above 2^64-1, a
 * key above 2^32-1 or with field number 0, a fixed32/fixed64 or length-delimited value running
 * past its enclosing message, or wire type 3, 4 (groups: protobuf-c does not support them, so
 * they are rejected, not walked), 6 or 7.
 *
 * Time O(len); stack: an array of 64 entries (1 KiB on LP64) when the limit is at most 64, of
 * CRPC__PB_MAX_DEPTH_CAP entries (16 KiB) otherwise. */
int crpc__pb_depth_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         unsigned max_depth);

#endif
