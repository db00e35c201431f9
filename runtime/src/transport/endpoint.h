/* Endpoint strings: "tcp://HOST:PORT", "tcp://[V6ADDR]:PORT", "unix:PATH" / "unix://PATH", and
 * "unix:@NAME" (a Linux abstract socket: no file; the address is a NUL byte followed by NAME). */
#ifndef CRPC_ENDPOINT_H
#define CRPC_ENDPOINT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

enum crpc__ep_kind { CRPC__EP_TCP = 1, CRPC__EP_UNIX = 2 };

#define CRPC__EP_HOST_MAX 255  /* longest DNS name */
#define CRPC__EP_PATH_MAX 107  /* sun_path (108) less the NUL (an abstract name: less its leading NUL) */

typedef struct crpc__endpoint {
  int kind;                          /* enum crpc__ep_kind */
  char host[CRPC__EP_HOST_MAX + 1];  /* TCP: name or literal address, without brackets */
  int port;                          /* TCP: 0..65535 */
  int host_is_v6;                    /* TCP: host was given in brackets */
  char path[CRPC__EP_PATH_MAX + 1];  /* UNIX: NUL-terminated path, non-empty; or the abstract
                                        name, without its '@' */
  int abstract;                      /* UNIX: "unix:@NAME", a Linux abstract socket */
} crpc__endpoint;

/* Parses s. Returns 0, or CRPC_EINVAL (NULL) / CRPC_EENDPOINT (anything malformed: unknown scheme,
 * missing or non-numeric or out-of-range port, empty host, unbalanced brackets, a bracketed host
 * that is not an IPv6 literal, a path too long for sun_path, embedded whitespace, "unix:@" with
 * no name...), or CRPC_ENOTSUP ("unix:@NAME" where abstract sockets do not exist: not Linux). */
int crpc__endpoint_parse(const char *s, crpc__endpoint *out);

/* Writes the canonical form ("tcp://127.0.0.1:80", "tcp://[::1]:80", "unix:/x", "unix:@x") into buf;
 * returns the length it needed (snprintf-like), excluding the NUL. */
int crpc__endpoint_format(const crpc__endpoint *ep, char *buf, size_t n);

/* Fills *sa with a UNIX endpoint's address and returns its exact length: for a path the
 * NUL-terminated path; for an abstract name a NUL byte then the name, without a terminating NUL
 * (the kernel takes the length as part of the name). */
socklen_t crpc__endpoint_sockaddr_un(const crpc__endpoint *ep, struct sockaddr_un *sa);

#endif
