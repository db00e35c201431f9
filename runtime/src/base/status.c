/* Call status codes and their names (crpc/status.h), generated from CRPC_CODE_MAP. */
#include <stdlib.h>
#include <string.h>

#include "crpc/error.h"
#include "crpc/status.h"

const char *crpc_code_name(crpc_code code) {
  /* A peer may send any u32, so `code` can hold a value outside the enum: compare as integers. */
  switch ((int64_t)code) {
#define CRPC_CODE_NAME_(name, num) \
  case num:                        \
    return #name;
    CRPC_CODE_MAP(CRPC_CODE_NAME_)
#undef CRPC_CODE_NAME_
  default:
    return "UNKNOWN";
  }
}

int crpc_code_from_name(const char *name, crpc_code *code) {
  if (name == NULL || code == NULL)
    return CRPC_EINVAL;
#define CRPC_CODE_FROM_NAME_(cname, num) \
  if (strcmp(name, #cname) == 0) {       \
    *code = CRPC_STATUS_##cname;         \
    return 0;                            \
  }
  CRPC_CODE_MAP(CRPC_CODE_FROM_NAME_)
#undef CRPC_CODE_FROM_NAME_
  return CRPC_EINVAL;
}

void crpc_status_reset(crpc_status *status) {
  if (status == NULL)
    return;
  free(status->message);
  free(status->details);
  free(status->trailers); /* one allocation: the array, its keys and values */
  status->message = NULL;
  status->details = NULL;
  status->details_len = 0;
  status->trailers = NULL;
  status->trailers_count = 0;
  status->code = CRPC_STATUS_OK;
}
