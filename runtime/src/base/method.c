/* Method lookup in a generated service table (crpc/method.h). A linear scan: services have a
 * handful of methods, and the server builds its own index by full name for dispatch. */
#include <string.h>

#include "crpc/method.h"

const crpc_method_desc *crpc_service_find_method(const crpc_service_desc *svc, const char *name) {
  if (svc == NULL || name == NULL || svc->methods == NULL)
    return NULL;
  for (size_t i = 0; i < svc->n_methods; i++)
    if (svc->methods[i].name != NULL && strcmp(svc->methods[i].name, name) == 0)
      return &svc->methods[i];
  return NULL;
}
