/* Deadline min-heap: the calls of a channel (or server) that have a deadline, earliest first, so
 * that one uv_timer serves them all and a call's deadline is removed in O(log n) when it
 * completes. Each element stores its own index (for removal). */
#ifndef CRPC_DLHEAP_H
#define CRPC_DLHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct crpc__dl_node {
  uint64_t deadline; /* loop time in ms */
  size_t index;      /* position in the heap; SIZE_MAX when not in it */
} crpc__dl_node;

typedef struct crpc__dlheap {
  crpc__dl_node **items;
  size_t len, cap;
} crpc__dlheap;

void crpc__dlheap_init(crpc__dlheap *h);
void crpc__dlheap_free(crpc__dlheap *h);
static inline void crpc__dl_node_init(crpc__dl_node *n) {
  n->deadline = 0;
  n->index = SIZE_MAX;
}
static inline int crpc__dl_node_queued(const crpc__dl_node *n) { return n->index != SIZE_MAX; }
/* 0, or -1 when out of memory. */
int crpc__dlheap_push(crpc__dlheap *h, crpc__dl_node *n);
/* Removes n if it is queued. */
void crpc__dlheap_remove(crpc__dlheap *h, crpc__dl_node *n);
static inline crpc__dl_node *crpc__dlheap_top(const crpc__dlheap *h) {
  return h->len ? h->items[0] : NULL;
}

#endif
