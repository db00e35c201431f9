#include "base/outbuf.h"

#include "base/alloc.h"

void crpc__outbuf_free(crpc__outbuf *b) {
  crpc__free(b->data);
  crpc__outbuf_init(b);
}

uint8_t *crpc__outbuf_reserve(crpc__outbuf *b, size_t n) {
  if (n > SIZE_MAX / 4 - b->len) return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = crpc__realloc(b->data, cap);
    if (!p) return NULL;
    b->data = p;
    b->cap = cap;
  }
  return b->data + b->len;
}

void crpc__outbuf_clear(crpc__outbuf *b, size_t keep) {
  b->len = 0;
  if (b->cap > keep) crpc__outbuf_free(b);
}
