/* The server's method table: full method name ("pkg.Service/Method") -> handler. Looked up once
 * per incoming call with the name as it arrived (not NUL-terminated). */
#ifndef CRPC_REGISTRY_H
#define CRPC_REGISTRY_H

#include <stddef.h>

#include "crpc/method.h"

typedef struct crpc__reg_entry {
  const crpc_method_desc *method; /* NULL: empty slot */
  const crpc_service_desc *service;
  size_t name_len;
  const void *impl;
  void *user_data;
} crpc__reg_entry;

typedef struct crpc__registry {
  crpc__reg_entry *slots;
  size_t cap, count; /* cap: 0 or a power of two */
  unsigned gen;      /* changes whenever entries may have moved (for callers' caches) */
} crpc__registry;

void crpc__registry_init(crpc__registry *r);
void crpc__registry_free(crpc__registry *r);
/* Adds every method of svc. 0, CRPC_EINVAL, CRPC_EABI, CRPC_EEXIST (service or a method name
 * registered already; nothing is added) or CRPC_ENOMEM. */
int crpc__registry_add(crpc__registry *r, const crpc_service_desc *svc, const void *impl,
                       void *user_data);
const crpc__reg_entry *crpc__registry_find(const crpc__registry *r, const char *name, size_t len);

#endif
