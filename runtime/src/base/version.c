/* Runtime version (crpc/crpc.h), from the macros in crpc/version.h: the one source of truth. */
#include "crpc/crpc.h"

#define CRPC_STR_(x) #x
#define CRPC_XSTR_(x) CRPC_STR_(x)

unsigned crpc_version(void) {
  return CRPC_VERSION_HEX;
}

const char *crpc_version_string(void) {
  return CRPC_XSTR_(CRPC_VERSION_MAJOR) "." CRPC_XSTR_(CRPC_VERSION_MINOR) "." CRPC_XSTR_(
      CRPC_VERSION_PATCH);
}
