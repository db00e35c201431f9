#include "server/registry.h"

#include <string.h>

#include "base/alloc.h"
#include "crpc/error.h"

static uint64_t hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211u;
  }
  return h;
}

void crpc__registry_init(crpc__registry *r) {
  r->slots = NULL;
  r->cap = r->count = 0;
  r->gen = 0;
}

void crpc__registry_free(crpc__registry *r) {
  crpc__free(r->slots);
  crpc__registry_init(r);
}

static crpc__reg_entry *probe(crpc__reg_entry *slots, size_t cap, const char *name, size_t len) {
  size_t i = (size_t)hash(name, len) & (cap - 1);
  while (slots[i].method) {
    if (slots[i].name_len == len && memcmp(slots[i].method->full_name, name, len) == 0)
      return &slots[i];
    i = (i + 1) & (cap - 1);
  }
  return &slots[i];
}

const crpc__reg_entry *crpc__registry_find(const crpc__registry *r, const char *name, size_t len) {
  if (!r->cap) return NULL;
  const crpc__reg_entry *e = probe(r->slots, r->cap, name, len);
  return e->method ? e : NULL;
}

static int grow(crpc__registry *r, size_t need) {
  if (need * 2 <= r->cap) return 0;
  size_t cap = r->cap ? r->cap : 16;
  while (need * 2 > cap) cap *= 2;
  crpc__reg_entry *slots = crpc__calloc(cap, sizeof *slots);
  if (!slots) return CRPC_ENOMEM;
  for (size_t i = 0; i < r->cap; i++)
    if (r->slots[i].method)
      *probe(slots, cap, r->slots[i].method->full_name, r->slots[i].name_len) = r->slots[i];
  crpc__free(r->slots);
  r->slots = slots;
  r->cap = cap;
  return 0;
}

static int service_known(const crpc__registry *r, const crpc_service_desc *svc) {
  for (size_t i = 0; i < r->cap; i++)
    if (r->slots[i].method && strcmp(r->slots[i].service->full_name, svc->full_name) == 0) return 1;
  return 0;
}

int crpc__registry_add(crpc__registry *r, const crpc_service_desc *svc, const void *impl,
                       void *user_data) {
  if (!svc || !svc->full_name || (svc->n_methods && !svc->methods)) return CRPC_EINVAL;
  if (svc->abi != CRPC_GENERATED_ABI) return CRPC_EABI;
  if (service_known(r, svc)) return CRPC_EEXIST;
  for (size_t i = 0; i < svc->n_methods; i++) {
    const crpc_method_desc *m = &svc->methods[i];
    if (!m->full_name || !m->input || !m->output) return CRPC_EINVAL;
    if (crpc__registry_find(r, m->full_name, strlen(m->full_name))) return CRPC_EEXIST;
    for (size_t j = 0; j < i; j++)
      if (strcmp(svc->methods[j].full_name, m->full_name) == 0) return CRPC_EEXIST;
  }
  int rc = grow(r, r->count + svc->n_methods);
  if (rc != 0) return rc;
  r->gen++;
  for (size_t i = 0; i < svc->n_methods; i++) {
    const crpc_method_desc *m = &svc->methods[i];
    size_t len = strlen(m->full_name);
    crpc__reg_entry *e = probe(r->slots, r->cap, m->full_name, len);
    e->method = m;
    e->service = svc;
    e->name_len = len;
    e->impl = impl;
    e->user_data = user_data;
    r->count++;
  }
  return 0;
}
