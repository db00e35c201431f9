/* Library error names and messages (crpc/error.h). crpc's own codes come from CRPC_ERRNO_MAP;
 * everything else is libuv's. libuv is asked only about codes in its own UV_ERRNO_MAP, because
 * for any other value uv_strerror()/uv_err_name() return a freshly allocated string that nobody
 * would free, and our contract promises static strings. */
#include <uv.h>

#include "crpc/error.h"

static int uv_knows(int err) {
  switch (err) {
#define CRPC_UV_KNOWN_(name, msg) case UV_##name:
    UV_ERRNO_MAP(CRPC_UV_KNOWN_)
#undef CRPC_UV_KNOWN_
    return 1;
  default:
    return 0;
  }
}

const char *crpc_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define CRPC_STRERROR_(name, value, msg) \
  case CRPC_##name:                      \
    return msg;
    CRPC_ERRNO_MAP(CRPC_STRERROR_)
#undef CRPC_STRERROR_
  default:
    return uv_knows(err) ? uv_strerror(err) : "unknown error";
  }
}

const char *crpc_err_name(int err) {
  switch (err) {
  case 0:
    return "OK";
#define CRPC_ERR_NAME_(name, value, msg) \
  case CRPC_##name:                      \
    return "CRPC_" #name;
    CRPC_ERRNO_MAP(CRPC_ERR_NAME_)
#undef CRPC_ERR_NAME_
  default:
    return uv_knows(err) ? uv_err_name(err) : "UNKNOWN";
  }
}
