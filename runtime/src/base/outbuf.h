/* Growable output byte buffer: frames are encoded straight into it and written with one write. */
#ifndef CRPC_OUTBUF_H
#define CRPC_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct crpc__outbuf {
  uint8_t *data;
  size_t len, cap;
} crpc__outbuf;

static inline void crpc__outbuf_init(crpc__outbuf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
}
void crpc__outbuf_free(crpc__outbuf *b);
/* Room for n more bytes at data + len, or NULL when out of memory (or n absurdly large). Write
 * there, then crpc__outbuf_commit(b, n). */
uint8_t *crpc__outbuf_reserve(crpc__outbuf *b, size_t n);
static inline void crpc__outbuf_commit(crpc__outbuf *b, size_t n) { b->len += n; }
/* Empties the buffer; releases its memory if it grew past keep bytes. */
void crpc__outbuf_clear(crpc__outbuf *b, size_t keep);

#endif
