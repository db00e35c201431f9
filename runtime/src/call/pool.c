/* Spare call objects: see call/pool.h. */
#include "call/pool.h"

#include "base/alloc.h"

static crpc__core *core_at(void *obj, size_t offset) {
  return (crpc__core *)(void *)((char *)obj + offset);
}
static void *obj_of(crpc__core *core, size_t offset) { return (char *)core - offset; }

void crpc__call_pool_init(crpc__call_pool *p) {
  crpc__list_init(&p->spare);
  p->n = 0;
}

void *crpc__call_pool_take(crpc__call_pool *p, size_t size, size_t offset) {
  if (!crpc__list_empty(&p->spare)) {
    crpc__core *core = CRPC__CONTAINER_OF(p->spare.next, crpc__core, link);
    crpc__list_remove(&core->link);
    p->n--;
    return obj_of(core, offset);
  }
  void *obj = crpc__malloc(size);
  if (obj) crpc__arena_init(&core_at(obj, offset)->arena);
  return obj;
}

void crpc__call_pool_destroy(void *obj, size_t offset) {
  crpc__flow_free(&core_at(obj, offset)->flow);
  crpc__arena_destroy(&core_at(obj, offset)->arena);
  crpc__free(obj);
}

void crpc__call_pool_give(crpc__call_pool *p, void *obj, size_t offset, int keep) {
  crpc__core *core = core_at(obj, offset);
  crpc__list_remove(&core->link);
  crpc__flow_free(&core->flow);
  if (!keep || p->n >= CRPC__CALL_POOL_MAX) {
    crpc__call_pool_destroy(obj, offset);
    return;
  }
  crpc__arena_reset(&core->arena);
  crpc__list_push_back(&p->spare, &core->link);
  p->n++;
}

void crpc__call_pool_free(crpc__call_pool *p, size_t offset) {
  while (!crpc__list_empty(&p->spare)) {
    crpc__core *core = CRPC__CONTAINER_OF(p->spare.next, crpc__core, link);
    crpc__list_remove(&core->link);
    crpc__call_pool_destroy(obj_of(core, offset), offset);
  }
  p->n = 0;
}
