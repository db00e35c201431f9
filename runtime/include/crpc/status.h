/* Call status: the outcome of one RPC, as the caller sees it.
 *
 * The 17 canonical codes use gRPC's numbers and names, so that they map one to one onto gRPC's
 * and onto the tools that know them. */
#ifndef CRPC_STATUS_H
#define CRPC_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/metadata.h"
#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, number). The wire carries the number. */
#define CRPC_CODE_MAP(X)     \
  X(OK, 0)                   \
  X(CANCELLED, 1)            \
  X(UNKNOWN, 2)              \
  X(INVALID_ARGUMENT, 3)     \
  X(DEADLINE_EXCEEDED, 4)    \
  X(NOT_FOUND, 5)            \
  X(ALREADY_EXISTS, 6)       \
  X(PERMISSION_DENIED, 7)    \
  X(RESOURCE_EXHAUSTED, 8)   \
  X(FAILED_PRECONDITION, 9)  \
  X(ABORTED, 10)             \
  X(OUT_OF_RANGE, 11)        \
  X(UNIMPLEMENTED, 12)       \
  X(INTERNAL, 13)            \
  X(UNAVAILABLE, 14)         \
  X(DATA_LOSS, 15)           \
  X(UNAUTHENTICATED, 16)

typedef enum crpc_code {
#define CRPC_CODE_GEN_(name, num) CRPC_STATUS_##name = (num),
  CRPC_CODE_MAP(CRPC_CODE_GEN_)
#undef CRPC_CODE_GEN_
} crpc_code;

/* Number of canonical codes (codes are 0 .. CRPC_CODE_COUNT-1). */
#define CRPC_CODE_COUNT 17

/* "OK", "CANCELLED", ..., "UNAUTHENTICATED"; "UNKNOWN" for a number outside the table (a peer may
 * send any 32-bit value). Static string; thread-safe. */
CRPC_EXTERN const char *crpc_code_name(crpc_code code);

/* Parses a code name as crpc_code_name() prints it (exact, upper case). Returns 0 and writes
 * *code, or CRPC_EINVAL. Thread-safe. */
CRPC_EXTERN int crpc_code_from_name(const char *name, crpc_code *code);

/* The outcome of a call.
 *
 * Who owns the memory depends on where the status came from; each function that hands one out
 * says which. A status filled in *for* the caller (blocking calls) owns `message`; release it with
 * crpc_status_reset(). A status passed *to* a callback belongs to crpc and is valid only until the
 * callback returns. */
typedef struct crpc_status {
  crpc_code code;  /* CRPC_STATUS_OK on success. Codes from a peer are passed through unchanged. */
  char *message;   /* NUL-terminated UTF-8 text from the server or from crpc, or NULL (never NULL
                      for a status crpc produced itself on failure). */
  uint8_t *details;        /* binary error details from the server (for instance an encoded
                              crpc.StatusDetails of idl/crpc/status.proto), or NULL */
  size_t details_len;
  crpc_metadata *trailers; /* metadata the server sent with the status, or NULL */
  size_t trailers_count;
} crpc_status;

/* Frees what *status owns (message, details, trailers) and sets it to { CRPC_STATUS_OK }. Safe on a zeroed status and
 * to call twice. Does not free `status` itself. */
CRPC_EXTERN void crpc_status_reset(crpc_status *status);

#ifdef __cplusplus
}
#endif
#endif
