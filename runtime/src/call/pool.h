/* Spare call objects of one owner (a channel or a server), kept for reuse: once the owner is
 * warm a call costs no malloc, and its arena keeps its first block. The objects embed a
 * crpc__core (at `offset`, offsetof(type, core)) and are linked through its `link`.
 * Loop thread only. */
#ifndef CRPC_CALL_POOL_H
#define CRPC_CALL_POOL_H

#include <stddef.h>

#include "base/list.h"
#include "call/core.h"

/* At most this many spare objects per owner: enough for a burst, little memory when idle. */
#define CRPC__CALL_POOL_MAX 64

typedef struct crpc__call_pool {
  crpc__list spare;
  size_t n;
} crpc__call_pool;

void crpc__call_pool_init(crpc__call_pool *p);
/* Out of line: a new object, and freeing one. */
void *crpc__call_pool_new(size_t size, size_t offset);
/* Frees an object outright (also the owner's teardown, for objects not in the pool). */
void crpc__call_pool_destroy(void *obj, size_t offset);
/* Frees every spare object. */
void crpc__call_pool_free(crpc__call_pool *p, size_t offset);

/* An object of `size` bytes: a spare one, or a new one whose core's arena and link are
 * initialised (the caller sets up the rest, crpc__core_init included). NULL when out of
 * memory. */
static inline void *crpc__call_pool_take(crpc__call_pool *p, size_t size, size_t offset) {
  if (crpc__list_empty(&p->spare)) return crpc__call_pool_new(size, offset);
  crpc__core *core = CRPC__CONTAINER_OF(p->spare.next, crpc__core, link);
  crpc__list_remove(&core->link);
  p->n--;
  return (char *)core - offset;
}

/* The object is no longer used (the caller has freed what it holds besides its core, and
 * taken it off its lists): kept for reuse with its arena reset and its unread messages freed, or
 * freed outright when the pool is full or keep is 0 (the owner closes). */
static inline void crpc__call_pool_give(crpc__call_pool *p, void *obj, size_t offset, int keep) {
  crpc__core *core = (crpc__core *)(void *)((char *)obj + offset);
  if (!keep || p->n >= CRPC__CALL_POOL_MAX) {
    crpc__call_pool_destroy(obj, offset);
    return;
  }
  if (core->flow.head) crpc__flow_free(&core->flow);
  crpc__arena_reset(&core->arena);
  crpc__list_push_back(&p->spare, &core->link);
  p->n++;
}

#endif
