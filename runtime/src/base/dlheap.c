#include "base/dlheap.h"

#include "base/alloc.h"

void crpc__dlheap_init(crpc__dlheap *h) {
  h->items = NULL;
  h->len = h->cap = 0;
}

void crpc__dlheap_free(crpc__dlheap *h) {
  crpc__free(h->items);
  crpc__dlheap_init(h);
}

static void place(crpc__dlheap *h, size_t i, crpc__dl_node *n) {
  h->items[i] = n;
  n->index = i;
}

static void sift_up(crpc__dlheap *h, size_t i) {
  crpc__dl_node *n = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (h->items[parent]->deadline <= n->deadline) break;
    place(h, i, h->items[parent]);
    i = parent;
  }
  place(h, i, n);
}

static void sift_down(crpc__dlheap *h, size_t i) {
  crpc__dl_node *n = h->items[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    uint64_t best = n->deadline;
    if (l < h->len && h->items[l]->deadline < best) m = l, best = h->items[l]->deadline;
    if (r < h->len && h->items[r]->deadline < best) m = r;
    if (m == i) break;
    place(h, i, h->items[m]);
    i = m;
  }
  place(h, i, n);
}

int crpc__dlheap_push(crpc__dlheap *h, crpc__dl_node *n) {
  if (h->len == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    crpc__dl_node **items = crpc__realloc(h->items, cap * sizeof *items);
    if (!items) return -1;
    h->items = items;
    h->cap = cap;
  }
  place(h, h->len++, n);
  sift_up(h, n->index);
  return 0;
}

void crpc__dlheap_remove(crpc__dlheap *h, crpc__dl_node *n) {
  if (n->index == SIZE_MAX) return;
  size_t i = n->index;
  n->index = SIZE_MAX;
  crpc__dl_node *last = h->items[--h->len];
  if (i == h->len) return;
  place(h, i, last);
  if (i > 0 && h->items[(i - 1) / 2]->deadline > last->deadline)
    sift_up(h, i);
  else
    sift_down(h, i);
}
