/* SO_PEERCRED and struct ucred are Linux extensions that glibc only declares with _GNU_SOURCE. */
#define _GNU_SOURCE
/* The libuv stream transport: TCP (uv_tcp_t) and Unix sockets (uv_pipe_t). See transport.h.
 *
 * Each operation is one libuv call; libuv's callbacks find the transport in the handle's data and
 * forward to the user's, so a read or a write costs one indirect call more than libuv's own. The
 * peer's identity is read once, when connected (a getpeername and, for Unix sockets, a
 * getsockopt), because it cannot be asked once the peer has gone. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "base/alloc.h"
#include "crpc/error.h"
#include "transport/endpoint.h"
#include "transport/stream.h"

typedef struct crpc__stream {
  crpc__transport base; /* first: the transport's pointer is the stream's */
  crpc__uv_stream u;
  uv_write_t wreq;
  crpc__transport_alloc_cb alloc;
  crpc__transport_read_cb read;
  crpc__transport_write_cb written;
  crpc__transport_close_cb closed;
} crpc__stream;

#define S(t) ((crpc__stream *)(void *)(t))

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  crpc__stream *s = h->data;
  (void)suggested; /* libuv's suggestion is a constant; the user knows what it expects */
  s->alloc(&s->base, buf);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  crpc__stream *s = h->data;
  s->read(&s->base, n, buf);
}

static int stream_read_start(crpc__transport *t, crpc__transport_alloc_cb alloc,
                             crpc__transport_read_cb read) {
  crpc__stream *s = S(t);
  s->alloc = alloc;
  s->read = read;
  return uv_read_start(&s->u.stream, on_alloc, on_read);
}

static void stream_read_stop(crpc__transport *t) { uv_read_stop(&S(t)->u.stream); }

static size_t stream_pending(crpc__transport *t) {
#ifdef FIONREAD
  int n = 0;
  if (t->fd >= 0 && ioctl(t->fd, FIONREAD, &n) == 0 && n > 0) return (size_t)n;
#else
  (void)t;
#endif
  return 0;
}

static int stream_try_write(crpc__transport *t, const uv_buf_t *bufs, unsigned n) {
  int w = uv_try_write(&S(t)->u.stream, bufs, n);
  return w == UV_EAGAIN ? 0 : w;
}

static void on_write(uv_write_t *req, int status) {
  crpc__stream *s = req->data;
  s->written(&s->base, status);
}

static int stream_write(crpc__transport *t, const uv_buf_t *bufs, unsigned n,
                        crpc__transport_write_cb cb) {
  crpc__stream *s = S(t);
  s->written = cb;
  s->wreq.data = s;
  return uv_write(&s->wreq, &s->u.stream, bufs, n, on_write);
}

static void on_closed(uv_handle_t *h) {
  crpc__stream *s = h->data;
  if (s->closed) s->closed(&s->base);
  crpc__free(s);
}

static void stream_close(crpc__transport *t, crpc__transport_close_cb cb) {
  crpc__stream *s = S(t);
  s->closed = cb;
  /* uv_close stops reading and cancels a write in progress (its callback runs first). */
  uv_close(&s->u.handle, on_closed);
}

static void stream_ref(crpc__transport *t, int on) {
  if (on)
    uv_ref(&S(t)->u.handle);
  else
    uv_unref(&S(t)->u.handle);
}

static const crpc__transport_ops stream_ops = {
    .read_start = stream_read_start,
    .read_stop = stream_read_stop,
    .pending = stream_pending,
    .try_write = stream_try_write,
    .write = stream_write,
    .close = stream_close,
    .ref = stream_ref,
};

int crpc__stream_new(uv_loop_t *loop, int kind, crpc__transport **out) {
  crpc__stream *s = crpc__calloc(1, sizeof *s);
  if (!s) return CRPC_ENOMEM;
  int rc = kind == CRPC__STREAM_TCP ? uv_tcp_init(loop, &s->u.tcp)
                                     : uv_pipe_init(loop, &s->u.pipe, 0);
  if (rc < 0) { /* nothing was registered with the loop */
    crpc__free(s);
    return rc;
  }
  s->u.handle.data = s;
  s->base.ops = &stream_ops;
  s->base.fd = -1;
  s->base.peer.transport = kind == CRPC__STREAM_TCP ? "tcp" : "unix";
  *out = &s->base;
  return 0;
}

uv_stream_t *crpc__stream_handle(crpc__transport *t) { return &S(t)->u.stream; }

/* The peer's address in endpoint form (see crpc__peer.addr). */
static void peer_addr(crpc__peer *p, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  p->addr[0] = '\0';
  memset(&ss, 0, sizeof ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return;
  crpc__endpoint ep;
  memset(&ep, 0, sizeof ep);
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    ep.kind = CRPC__EP_TCP;
    ep.host_is_v6 = ss.ss_family == AF_INET6;
    if (ep.host_is_v6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, ep.host, sizeof ep.host);
      ep.port = ntohs(a->sin6_port);
    } else {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
      uv_ip4_name(a, ep.host, sizeof ep.host);
      ep.port = ntohs(a->sin_port);
    }
  } else if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *a = (const struct sockaddr_un *)&ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0; /* 0: unnamed */
    if (n > sizeof a->sun_path) n = sizeof a->sun_path;
    if (n == 0) {
      snprintf(p->addr, sizeof p->addr, "unix:");
      return;
    }
    ep.kind = CRPC__EP_UNIX;
    ep.abstract = a->sun_path[0] == '\0';
    const char *name = a->sun_path + (ep.abstract ? 1 : 0);
    size_t nl = n - (ep.abstract ? 1 : 0);
    if (!ep.abstract) nl = strnlen(name, nl);
    if (nl > CRPC__EP_PATH_MAX) nl = CRPC__EP_PATH_MAX;
    memcpy(ep.path, name, nl);
    ep.path[nl] = '\0';
  } else {
    return;
  }
  int w = crpc__endpoint_format(&ep, p->addr, sizeof p->addr);
  if (w < 0 || (size_t)w >= sizeof p->addr) p->addr[0] = '\0'; /* never cut an address short */
}

void crpc__stream_connected(crpc__transport *t) {
  crpc__stream *s = S(t);
  uv_os_fd_t fd;
  if (uv_fileno(&s->u.handle, &fd) == 0) t->fd = fd;
  if (s->u.handle.type == UV_TCP) uv_tcp_nodelay(&s->u.tcp, 1);
  if (t->fd < 0) return;
  peer_addr(&t->peer, t->fd);
#ifdef SO_PEERCRED
  if (s->u.handle.type == UV_NAMED_PIPE) {
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(t->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr) {
      t->peer.has_cred = 1;
      t->peer.uid = cr.uid;
      t->peer.gid = cr.gid;
      t->peer.pid = cr.pid;
    }
  }
#endif
}
