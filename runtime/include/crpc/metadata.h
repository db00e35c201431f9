/* Call metadata: key/value pairs sent with a call (client -> server, with the request) and with
 * its status (server -> client, "trailers").
 *
 * Keys: 1 to 255 bytes of lower-case letters, digits, '-', '_' and '.'; keys beginning with
 * "crpc-" are reserved for crpc itself. Values: for a key ending in "-bin", any bytes; otherwise
 * printable ASCII (0x20-0x7E). Keys may repeat; order is kept.
 *
 * Size: each entry counts key length + value length + 32 bytes (as gRPC counts); the sum over a
 * call's entries must not exceed the receiver's CRPC_OPT_MAX_METADATA_SIZE, nor the sender's. */
#ifndef CRPC_METADATA_H
#define CRPC_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_metadata {
  const char *key;      /* NUL-terminated */
  const uint8_t *value; /* value_len bytes; may contain NUL for -bin keys */
  size_t value_len;
} crpc_metadata;

/* 1 when key (NUL-terminated) and value obey the rules above and the key is not reserved,
 * else 0. Thread-safe. */
CRPC_EXTERN int crpc_metadata_valid(const char *key, const uint8_t *value, size_t value_len);

/* The size an entry counts for: strlen(key) + value_len + 32. Thread-safe. */
CRPC_EXTERN size_t crpc_metadata_entry_size(const char *key, size_t value_len);

/* The first entry of entries[0..count) whose key is `key` (compared with strcmp), or NULL when
 * there is none or entries or key is NULL. Thread-safe. */
CRPC_EXTERN const crpc_metadata *crpc_metadata_find(const crpc_metadata *entries, size_t count,
                                                    const char *key);

#ifdef __cplusplus
}
#endif
#endif
