/* Intrusive circular doubly-linked list. A list head is a crpc__list whose next/prev point at
 * itself when empty; elements embed a crpc__list and are recovered with CRPC__CONTAINER_OF. */
#ifndef CRPC_LIST_H
#define CRPC_LIST_H

#include <stddef.h>

typedef struct crpc__list {
  struct crpc__list *next, *prev;
} crpc__list;

#define CRPC__CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void crpc__list_init(crpc__list *l) { l->next = l->prev = l; }
static inline int crpc__list_empty(const crpc__list *l) { return l->next == l; }
/* An element that was initialised or removed is "unlinked": it points at itself. */
static inline int crpc__list_linked(const crpc__list *e) { return e->next != e; }

static inline void crpc__list_push_back(crpc__list *head, crpc__list *e) {
  e->prev = head->prev;
  e->next = head;
  head->prev->next = e;
  head->prev = e;
}

static inline void crpc__list_remove(crpc__list *e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
  e->next = e->prev = e;
}

/* Moves every element of src to the end of dst; src ends empty. */
static inline void crpc__list_splice(crpc__list *dst, crpc__list *src) {
  if (crpc__list_empty(src)) return;
  src->next->prev = dst->prev;
  src->prev->next = dst;
  dst->prev->next = src->next;
  dst->prev = src->prev;
  crpc__list_init(src);
}

#endif
