/* Library errors: what a crpc_ function returns when it could not do what was asked.
 *
 * These are separate from call status (crpc/status.h): a call that reached the server and failed
 * there returns 0 from the calling function and reports its outcome as a crpc_code.
 *
 * Every function that can fail returns an int: 0 on success, a negative value on failure. The
 * negative value is either one of the CRPC_E* codes below or a libuv/system error code (a negative
 * errno value, as libuv reports it: UV_EADDRINUSE, UV_ECONNREFUSED, ...). crpc_strerror() and
 * crpc_err_name() describe both kinds. */
#ifndef CRPC_ERROR_H
#define CRPC_ERROR_H

#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message). crpc's own codes live far below any errno value. */
#define CRPC_ERRNO_MAP(X)                                                                    \
  X(EINVAL, -20001, "invalid argument")                                                      \
  X(ENOMEM, -20002, "out of memory")                                                         \
  X(EENDPOINT, -20003, "malformed endpoint (expected tcp://host:port or unix:/path)")        \
  X(ECLOSED, -20004, "object is closing or closed")                                          \
  X(EEXIST, -20005, "already registered")                                                    \
  X(ESTATE, -20006, "operation not allowed in the object's current state")                   \
  X(ENOTSUP, -20007, "operation not supported by this object")                               \
  X(EDEADLK, -20008, "blocking call made on the thread that runs the channel's loop")        \
  X(EABI, -20009, "generated code was built for another crpc interface version")            \
  X(ETYPE, -20010, "message type does not match the method")                                 \
  X(ERESOLVE, -20011, "host name could not be resolved")                                     \
  X(ELIMIT, -20012, "a configured limit was reached")                                        \
  X(EAGAIN, -20013, "stream flow-control window or connection output buffer full: wait until writable")

typedef enum crpc_errno {
#define CRPC_ERRNO_GEN_(name, value, msg) CRPC_##name = (value),
  CRPC_ERRNO_MAP(CRPC_ERRNO_GEN_)
#undef CRPC_ERRNO_GEN_
} crpc_errno;

/* A human-readable description of err (a CRPC_E* code, a libuv/system error, or 0 for
 * "success"). Returns a static string; never NULL. Thread-safe. */
CRPC_EXTERN const char *crpc_strerror(int err);

/* The symbolic name of err ("CRPC_EINVAL", "ECONNREFUSED", "OK"). Static string; never NULL;
 * "UNKNOWN" for values no table knows. Thread-safe. */
CRPC_EXTERN const char *crpc_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
