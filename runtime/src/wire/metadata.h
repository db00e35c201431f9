/* Metadata on the wire: encoding the user's entries into a block, and decoding a received block
 * into an array of crpc_metadata that points into one allocation. */
#ifndef CRPC_METADATA_INTERNAL_H
#define CRPC_METADATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/metadata.h"

/* Validates entries and returns the block size in *block_len and the counted size in *counted.
 * Returns 0 or CRPC_EINVAL (an invalid or reserved key, a bad value, a NULL pointer). */
int crpc__md_measure(const crpc_metadata *md, size_t count, size_t *block_len, size_t *counted);
/* Writes the block (block_len bytes from crpc__md_measure); returns its end. */
uint8_t *crpc__md_write(uint8_t *p, const crpc_metadata *md, size_t count);

/* Decodes a block that crpc__md_next accepted. On success returns 0 with *out (one allocation
 * made with alloc(ud, size): the array, then NUL-terminated keys and the values) and *count.
 * CRPC__MD_TOO_BIG when the counted size exceeds limit; CRPC_ENOMEM; CRPC_EINVAL when malformed. */
#define CRPC__MD_TOO_BIG (-1)
int crpc__md_decode(const uint8_t *block, uint32_t len, size_t limit,
                    void *(*alloc)(void *ud, size_t n), void *ud, crpc_metadata **out,
                    size_t *count);

#endif
