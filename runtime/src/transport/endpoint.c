/* Endpoint strings (endpoint.h). Parsing is strict on purpose: a typo in a target should fail at
 * crpc_channel_new() with CRPC_EENDPOINT, not later as a confusing connect or resolve error. */
#include "transport/endpoint.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "crpc/error.h"

/* Host names: letters, digits and the punctuation DNS names and IPv4 literals use. Anything else
 * (whitespace, '/', '@', '%', ':') is a typo or an attempt to smuggle in more than a host. */
static int host_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

/* Port: 1 to 5 decimal digits, value 0..65535, and nothing after it. */
static int parse_port(const char *s, int *port) {
  size_t n = strlen(s);
  if (n < 1 || n > 5)
    return CRPC_EENDPOINT;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return CRPC_EENDPOINT;
    v = v * 10 + (s[i] - '0');
  }
  if (v > 65535)
    return CRPC_EENDPOINT;
  *port = (int)v;
  return 0;
}

/* "[V6]:PORT". The literal is stored in inet_ntop's canonical spelling, so that two spellings of
 * one address format identically. Zone ids ("%eth0") are not supported. */
static int parse_v6(const char *s, crpc__endpoint *out) {
  const char *close = strchr(s, ']');
  if (close == NULL || close[1] != ':')
    return CRPC_EENDPOINT;
  size_t n = (size_t)(close - (s + 1));
  char lit[INET6_ADDRSTRLEN];
  unsigned char addr[16];
  if (n == 0 || n >= sizeof lit)
    return CRPC_EENDPOINT;
  memcpy(lit, s + 1, n);
  lit[n] = '\0';
  if (inet_pton(AF_INET6, lit, addr) != 1)
    return CRPC_EENDPOINT;
  if (inet_ntop(AF_INET6, addr, out->host, sizeof out->host) == NULL)
    return CRPC_EENDPOINT;
  out->host_is_v6 = 1;
  return parse_port(close + 2, &out->port);
}

/* "HOST:PORT" with a name or an IPv4 literal; exactly one ':'. */
static int parse_host_port(const char *s, crpc__endpoint *out) {
  const char *colon = strchr(s, ':');
  if (colon == NULL)
    return CRPC_EENDPOINT;
  size_t n = (size_t)(colon - s);
  if (n == 0 || n > CRPC__EP_HOST_MAX)
    return CRPC_EENDPOINT;
  for (size_t i = 0; i < n; i++)
    if (!host_char_ok(s[i]))
      return CRPC_EENDPOINT;
  memcpy(out->host, s, n);
  out->host[n] = '\0';
  return parse_port(colon + 1, &out->port);
}

/* Paths may hold any byte the file system allows, except that control characters and whitespace
 * in a configured path are almost always copy-paste accidents, so they are refused. A leading '@'
 * names a Linux abstract socket (the same rule for its name); a file whose name starts with '@'
 * is still reachable as "unix:./@name". */
static int parse_unix(const char *s, crpc__endpoint *out) {
  if (s[0] == '@') {
#ifndef __linux__
    return CRPC_ENOTSUP; /* abstract sockets are a Linux feature */
#else
    out->abstract = 1;
    s++;
#endif
  }
  size_t n = strlen(s);
  if (n == 0 || n > CRPC__EP_PATH_MAX)
    return CRPC_EENDPOINT;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7F)
      return CRPC_EENDPOINT;
  }
  memcpy(out->path, s, n + 1);
  out->kind = CRPC__EP_UNIX;
  return 0;
}

int crpc__endpoint_parse(const char *s, crpc__endpoint *out) {
  if (s == NULL || out == NULL)
    return CRPC_EINVAL;
  crpc__endpoint ep;
  memset(&ep, 0, sizeof ep);
  int rc;
  if (strncmp(s, "tcp://", 6) == 0) {
    ep.kind = CRPC__EP_TCP;
    rc = s[6] == '[' ? parse_v6(s + 6, &ep) : parse_host_port(s + 6, &ep);
  } else if (strncmp(s, "unix://", 7) == 0) {
    rc = parse_unix(s + 7, &ep);
  } else if (strncmp(s, "unix:", 5) == 0) {
    rc = parse_unix(s + 5, &ep);
  } else {
    rc = CRPC_EENDPOINT;
  }
  /* *out is written only on success, so a failed parse never leaves a half-filled endpoint. */
  if (rc == 0)
    *out = ep;
  return rc;
}

int crpc__endpoint_format(const crpc__endpoint *ep, char *buf, size_t n) {
  if (ep == NULL || (buf == NULL && n > 0))
    return CRPC_EINVAL;
  if (ep->kind == CRPC__EP_UNIX)
    return snprintf(buf, n, "unix:%s%s", ep->abstract ? "@" : "", ep->path);
  if (ep->kind != CRPC__EP_TCP)
    return CRPC_EINVAL;
  if (ep->host_is_v6)
    return snprintf(buf, n, "tcp://[%s]:%d", ep->host, ep->port);
  return snprintf(buf, n, "tcp://%s:%d", ep->host, ep->port);
}

socklen_t crpc__endpoint_sockaddr_un(const crpc__endpoint *ep, struct sockaddr_un *sa) {
  size_t n = strlen(ep->path); /* <= CRPC__EP_PATH_MAX: fits sun_path with its NUL either way */
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (ep->abstract) {
    memcpy(sa->sun_path + 1, ep->path, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  }
  memcpy(sa->sun_path, ep->path, n + 1);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}
