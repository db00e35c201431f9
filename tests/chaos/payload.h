/* Request payloads derived from the call id, and the answer the server must give: the request
 * payload reversed and bit-inverted. The client checks a response against the id alone, so it
 * keeps no copy of what it sent. */
#ifndef CHAOS_PAYLOAD_H
#define CHAOS_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define CHAOS_PAYLOAD_MAX 1500

static inline size_t chaos_payload_len(uint64_t id) {
  return (size_t)(((id * 2654435761u) >> 7) % CHAOS_PAYLOAD_MAX);
}

static inline uint8_t chaos_payload_byte(uint64_t id, size_t i) {
  return (uint8_t)(id * 31u + i * 7u + (id >> 8));
}

/* Fills buf (>= CHAOS_PAYLOAD_MAX bytes) with id's request payload; returns its length. */
static inline size_t chaos_payload_fill(uint64_t id, uint8_t *buf) {
  size_t n = chaos_payload_len(id);
  for (size_t i = 0; i < n; i++) buf[i] = chaos_payload_byte(id, i);
  return n;
}

/* The server's answer to a payload: out[i] = ~in[n-1-i]. */
static inline void chaos_payload_answer(const uint8_t *in, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)~in[n - 1 - i];
}

/* 1 when (data, len) is the server's answer to id's request payload. */
static inline int chaos_payload_check(uint64_t id, const uint8_t *data, size_t len) {
  size_t n = chaos_payload_len(id);
  if (len != n) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t want = (uint8_t)(0xffu ^ chaos_payload_byte(id, n - 1 - i));
    if (data[i] != want) return 0;
  }
  return 1;
}

#endif
