/* Spare call objects: see call/pool.h. */
#include "call/pool.h"

#include "base/alloc.h"

static crpc__core *core_at(void *obj, size_t offset) {
  return (crpc__core *)(void *)((char *)obj + offset);
}

void crpc__call_pool_init(crpc__call_pool *p) {
  crpc__list_init(&p->spare);
  p->n = 0;
}

void *crpc__call_pool_new(size_t size, size_t offset) {
  void *obj = crpc__malloc(size);
  if (!obj) return NULL;
  crpc__arena_init(&core_at(obj, offset)->arena);
  crpc__list_init(&core_at(obj, offset)->link);
  return obj;
}

void crpc__call_pool_destroy(void *obj, size_t offset) {
  crpc__core *core = core_at(obj, offset);
  crpc__flow_free(&core->flow);
  crpc__arena_destroy(&core->arena);
  crpc__free(obj);
}

void crpc__call_pool_free(crpc__call_pool *p, size_t offset) {
  while (!crpc__list_empty(&p->spare)) {
    crpc__core *core = CRPC__CONTAINER_OF(p->spare.next, crpc__core, link);
    crpc__list_remove(&core->link);
    crpc__call_pool_destroy((char *)core - offset, offset);
  }
  p->n = 0;
}
