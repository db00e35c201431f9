/* SO_REUSEPORT is a BSD/Linux extension that glibc only declares with _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
/* Servers: listening, accepting, lifecycle. Calls are in server_call.c. */
#include "server/server.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "crpc/error.h"
#include "transport/endpoint.h"
#include "base/options.h"
#include "transport/sigpipe.h"
#include "transport/stream.h"
#include "server/call.h"

static void on_goaway(crpc__conn *c, uint32_t last_id, uint32_t code) {
  (void)c; /* a client going away starts no more calls; its calls finish normally, and conn.c
              closes the connection once none is left */
  (void)last_id;
  (void)code;
}

static void on_closed(crpc__conn *c) {
  crpc_server *srv = c->ctx->owner;
  crpc__server_calls_unhold(c);
  crpc__list_remove(&c->owner_link);
  srv->nconns--;
  if (srv->closing || srv->draining) crpc__server_maybe_free(srv);
}

static const crpc__conn_ops server_conn_ops = {crpc__server_on_call, on_goaway, on_closed, NULL};

static void on_stop(uv_async_t *a) {
  crpc_server *srv = a->data;
  if (srv->running && atomic_exchange(&srv->stop_requested, 0)) uv_stop(srv->loop);
}

int crpc_server_new(crpc_server **out, uv_loop_t *loop) {
  if (!out) return CRPC_EINVAL;
  *out = NULL;
  crpc__ignore_sigpipe();
  crpc_server *srv = crpc__calloc(1, sizeof *srv);
  if (!srv) return CRPC_ENOMEM;
  int rc;
  if (loop) {
    srv->loop = loop;
  } else {
    if ((rc = uv_loop_init(&srv->own)) < 0) {
      crpc__free(srv);
      return rc;
    }
    srv->own_loop = 1;
    srv->loop = &srv->own;
  }
  crpc__options_defaults(srv->opt);
  crpc__registry_init(&srv->reg);
  crpc__list_init(&srv->listeners);
  crpc__list_init(&srv->conns);
  crpc__list_init(&srv->calls);
  crpc__call_pool_init(&srv->pool);
  atomic_init(&srv->stop_requested, 0);
  crpc__io_ctx_init(&srv->io, srv->loop, &server_conn_ops, srv);
  if ((rc = crpc__io_ctx_start(&srv->io)) < 0 ||
      (rc = uv_async_init(srv->loop, &srv->stop_async, on_stop)) < 0) {
    if (rc != 0 && srv->io.flusher.loop) uv_close((uv_handle_t *)&srv->io.flusher, NULL);
    if (srv->own_loop) {
      uv_run(&srv->own, UV_RUN_DEFAULT);
      uv_loop_close(&srv->own);
    }
    crpc__free(srv);
    return rc;
  }
  srv->stop_async.data = srv;
  if (!srv->own_loop) uv_unref((uv_handle_t *)&srv->stop_async);
  crpc__deadlines_init(&srv->deadlines, srv->loop);
  uv_timer_init(srv->loop, &srv->sweep);
  uv_timer_init(srv->loop, &srv->drain_timer);
  srv->sweep.data = srv->drain_timer.data = srv;
  uv_unref((uv_handle_t *)&srv->sweep);
  *out = srv;
  return 0;
}

int crpc_server_set_option(crpc_server *srv, crpc_option opt, int64_t value) {
  if (!srv) return CRPC_EINVAL;
  int rc = crpc__option_check(opt, value, CRPC_OPT_SERVER);
  if (rc != 0) return rc;
  if (srv->listening || srv->closing) return CRPC_ESTATE;
  srv->opt[opt] = value;
  return 0;
}

uv_loop_t *crpc_server_loop(const crpc_server *srv) { return srv ? srv->loop : NULL; }

int crpc_server_register(crpc_server *srv, const crpc_service_desc *svc, const void *impl,
                         void *user_data) {
  if (!srv || !svc || !impl) return CRPC_EINVAL;
  if (srv->closing) return CRPC_ECLOSED;
  int rc = crpc__registry_add(&srv->reg, svc, impl, user_data);
  if (rc == 0 && srv->nsiblings) rc = crpc__loops_register(srv, svc, impl, user_data);
  return rc;
}

/* ---- Accept ---------------------------------------------------------------------------------- */

typedef crpc__uv_stream crpc__spare_handle;

static void free_handle(uv_handle_t *h) { crpc__free(h); }

/* Accepts the pending connection into the spare handle and closes it at once: the client learns
 * at once, and libuv keeps polling the listener. */
static void refuse_connection(crpc_server *srv, uv_stream_t *ls) {
  crpc__spare_handle *h = srv->spare;
  if (!h) return; /* nothing left to accept with: the next accept after memory returns will */
  srv->spare = NULL;
  int rc = ls->type == UV_TCP ? uv_tcp_init(srv->loop, &h->tcp) : uv_pipe_init(srv->loop, &h->pipe, 0);
  if (rc < 0) {
    crpc__free(h);
    return;
  }
  uv_accept(ls, &h->stream);
  uv_close(&h->handle, free_handle);
}

static void keep_spare(crpc_server *srv) {
  if (!srv->spare) srv->spare = crpc__malloc(sizeof(crpc__spare_handle));
}

static void on_connection(uv_stream_t *ls, int status) {
  crpc__listener *lst = ls->data;
  crpc_server *srv = lst->srv;
  if (status < 0 || srv->closing) return;
  crpc__transport *t;
  int kind = ls->type == UV_TCP ? CRPC__STREAM_TCP : CRPC__STREAM_UNIX;
  if (crpc__stream_new(srv->loop, kind, &t) < 0) {
    refuse_connection(srv, ls);
    return;
  }
  if (uv_accept(ls, crpc__stream_handle(t)) < 0) {
    t->ops->close(t, NULL);
    return;
  }
  if (srv->nconns >= (size_t)srv->opt[CRPC_OPT_MAX_CONNECTIONS]) {
    t->ops->close(t, NULL); /* over the limit: closed at once, never left pending */
    return;
  }
  crpc__conn *c = crpc__conn_new(&srv->io, 0, lst->label);
  if (!c) {
    t->ops->close(t, NULL);
    return;
  }
  crpc__list_push_back(&srv->conns, &c->owner_link);
  srv->nconns++;
  crpc__stream_connected(t);
  if (crpc__conn_attach(c, t) < 0) crpc__conn_close(c, CRPC_STATUS_UNAVAILABLE, "accept failed");
  keep_spare(srv);
}

/* ---- Connection timeouts ---------------------------------------------------------------------- */

/* One periodic check over all connections instead of timers per connection: an idle connection
 * then costs no timer handle, and the check is a few comparisons per connection. */
static void on_sweep(uv_timer_t *t) {
  crpc_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  uint64_t handshake = (uint64_t)srv->opt[CRPC_OPT_HANDSHAKE_TIMEOUT_MS];
  uint64_t idle = (uint64_t)srv->opt[CRPC_OPT_IDLE_TIMEOUT_MS];
  uint64_t stall = (uint64_t)srv->opt[CRPC_OPT_STALL_TIMEOUT_MS];
  for (crpc__list *e = srv->conns.next; e != &srv->conns; e = e->next) {
    crpc__conn *c = CRPC__CONTAINER_OF(e, crpc__conn, owner_link);
    if (c->state != CRPC__CONN_OPEN || c->close_when_flushed) continue;
    crpc__conn_trim_idle(c, now);
    if (c->dec.want_preface && now - c->created_at >= handshake)
      crpc__conn_abort(c, CRPC__GOAWAY_IDLE, "no preface within HANDSHAKE_TIMEOUT_MS");
    else if (c->partial_since && now - c->partial_since >= stall)
      crpc__conn_abort(c, CRPC__GOAWAY_PROTOCOL_ERROR, "frame not completed within STALL_TIMEOUT_MS");
    else if (c->read_paused && c->writing && now - c->last_write >= stall)
      crpc__conn_abort(c, CRPC__GOAWAY_ENHANCE_YOUR_CALM,
                       "peer read none of its responses within STALL_TIMEOUT_MS");
    else if (idle && c->calls.count == 0 && !c->read_paused && now - c->last_read >= idle &&
             crpc__conn_send_goaway(c, CRPC__GOAWAY_IDLE, "idle timeout") == 0)
      crpc__conn_close_when_flushed(c);
  }
}

static void start_sweep(crpc_server *srv) {
  int64_t p = srv->opt[CRPC_OPT_HANDSHAKE_TIMEOUT_MS];
  if (srv->opt[CRPC_OPT_STALL_TIMEOUT_MS] < p) p = srv->opt[CRPC_OPT_STALL_TIMEOUT_MS];
  if (srv->opt[CRPC_OPT_IDLE_TIMEOUT_MS] && srv->opt[CRPC_OPT_IDLE_TIMEOUT_MS] < p)
    p = srv->opt[CRPC_OPT_IDLE_TIMEOUT_MS];
  p /= 4; /* a timeout fires at most a quarter late */
  if (p < 5) p = 5;
  if (p > 500) p = 500; /* also the cadence of giving back idle connections' buffers */
  uv_timer_start(&srv->sweep, on_sweep, (uint64_t)p, (uint64_t)p);
}

/* ---- Listen ---------------------------------------------------------------------------------- */

static int resolve_tcp(const crpc__endpoint *ep, struct sockaddr_storage *ss, uv_loop_t *loop) {
  if (uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)ss) == 0) return 0;
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char port[8];
  snprintf(port, sizeof port, "%d", ep->port);
  if (uv_getaddrinfo(loop, &req, NULL, ep->host, port, &hints) < 0 || !req.addrinfo)
    return CRPC_ERESOLVE;
  memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

static int bound_port(uv_tcp_t *t) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) < 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Removes the socket file this listener created, if it is still the one at its path: another
 * server's socket bound there since, or any other file, stays. (libuv would unlink whatever is at
 * the path; crpc binds unix sockets itself, so libuv does not know the path.) */
static void unlink_if_same(const char *path, dev_t dev, ino_t ino) {
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
    unlink(path);
}

static void unlink_own_socket(crpc__listener *lst) {
  if (!lst->path) return;
  unlink_if_same(lst->path, lst->dev, lst->ino);
  crpc__free(lst->path);
  lst->path = NULL;
}

static void listener_closed(uv_handle_t *h) {
  crpc__listener *lst = h->data;
  crpc_server *srv = lst->srv;
  crpc__free(lst->label);
  crpc__free(lst);
  srv->pending--;
  crpc__server_maybe_free(srv);
}

static void listener_discard(uv_handle_t *h) {
  crpc__listener *lst = h->data;
  crpc__free(lst->label);
  crpc__free(lst);
}

/* A TCP socket bound with SO_REUSEADDR and SO_REUSEPORT, so that every loop of a LOOPS > 1
 * server can listen on the same port; libuv 1.44 has no flag for it, so the socket is made here
 * and handed to libuv. */
static int bind_reuseport(uv_tcp_t *t, const struct sockaddr *sa) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 || bind(fd, sa, len) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  int rc = uv_tcp_open(t, fd);
  if (rc < 0) close(fd);
  return rc;
}

static void server_listening(crpc_server *srv) {
  keep_spare(srv);
  if (srv->listening) return;
  srv->io.max_recv = (uint32_t)srv->opt[CRPC_OPT_MAX_RECV_MESSAGE_SIZE];
  srv->io.max_send = (uint32_t)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE];
  srv->io.max_write = (size_t)srv->opt[CRPC_OPT_MAX_WRITE_BUFFER];
  srv->io.min_ping_interval = (uint64_t)srv->opt[CRPC_OPT_MIN_PING_INTERVAL_MS];
  srv->listening = 1;
  start_sweep(srv);
}

static crpc__listener *listener_new(crpc_server *srv, const char *label) {
  crpc__listener *lst = crpc__calloc(1, sizeof *lst);
  if (!lst) return NULL;
  lst->srv = srv;
  lst->label = crpc__strndup(label, strlen(label));
  if (!lst->label) {
    crpc__free(lst);
    return NULL;
  }
  return lst;
}

int crpc__server_listen_tcp(crpc_server *srv, const char *label, const struct sockaddr *sa,
                            int reuse, int *port_out) {
  crpc__listener *lst = listener_new(srv, label);
  if (!lst) return CRPC_ENOMEM;
  int rc = uv_tcp_init(srv->loop, &lst->u.tcp);
  if (rc < 0) {
    crpc__free(lst->label);
    crpc__free(lst);
    return rc;
  }
  lst->u.handle.data = lst;
  rc = reuse ? bind_reuseport(&lst->u.tcp, sa) : uv_tcp_bind(&lst->u.tcp, sa, 0);
  if (rc == 0) rc = uv_listen(&lst->u.stream, 511, on_connection);
  if (rc < 0) {
    uv_close(&lst->u.handle, listener_discard);
    return rc;
  }
  server_listening(srv);
  crpc__list_push_back(&srv->listeners, &lst->link);
  if (port_out) *port_out = bound_port(&lst->u.tcp);
  return 0;
}

/* A Unix socket made and bound here rather than by uv_pipe_bind(), which (libuv 1.44) takes only
 * a NUL-terminated path (no abstract names), reports a missing directory as EACCES instead of
 * ENOENT, and unlinks whatever is at the path when the handle closes. For a file, its device and
 * inode are read right after bind() (unlink_own_socket() removes only that file), and `mode`
 * (CRPC_OPT_UNIX_SOCKET_MODE) is applied before listen(): until then a connect is refused, so no
 * client ever gets in through the umask's mode. Returns the bound socket or a negative error. */
static int bind_unix(crpc__listener *lst, const crpc__endpoint *ep, int64_t mode) {
  struct sockaddr_un sa;
  socklen_t len = crpc__endpoint_sockaddr_un(ep, &sa);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  if (bind(fd, (const struct sockaddr *)&sa, len) != 0) {
    rc = -errno; /* EADDRINUSE when anything exists at the path: it is never replaced */
    close(fd);
    return rc;
  }
  if (ep->abstract) return fd;
  struct stat st;
  if (lstat(ep->path, &st) != 0) {
    rc = -errno; /* removed in the instant since bind(): nothing of ours is left to remove */
  } else if (!S_ISSOCK(st.st_mode)) {
    rc = UV_EADDRINUSE; /* replaced in that instant: not ours, left alone */
  } else {
    lst->dev = st.st_dev;
    lst->ino = st.st_ino;
    lst->path = crpc__strndup(ep->path, strlen(ep->path));
    if (!lst->path) {
      rc = CRPC_ENOMEM;
      unlink_if_same(ep->path, st.st_dev, st.st_ino);
    } else if (mode != 0 && chmod(ep->path, (mode_t)mode) != 0) {
      rc = -errno;
      unlink_own_socket(lst);
    }
  }
  if (rc != 0) {
    close(fd);
    return rc;
  }
  return fd;
}

static int listen_unix(crpc_server *srv, const char *label, const crpc__endpoint *ep) {
  crpc__listener *lst = listener_new(srv, label);
  if (!lst) return CRPC_ENOMEM;
  int rc = uv_pipe_init(srv->loop, &lst->u.pipe, 0);
  if (rc < 0) {
    crpc__free(lst->label);
    crpc__free(lst);
    return rc;
  }
  lst->u.handle.data = lst;
  int fd = bind_unix(lst, ep, srv->opt[CRPC_OPT_UNIX_SOCKET_MODE]);
  if (fd < 0) {
    rc = fd;
  } else if ((rc = uv_pipe_open(&lst->u.pipe, fd)) < 0) {
    close(fd);
  } else {
    rc = uv_listen(&lst->u.stream, 511, on_connection);
  }
  if (rc < 0) {
    unlink_own_socket(lst);
    uv_close(&lst->u.handle, listener_discard);
    return rc;
  }
  server_listening(srv);
  crpc__list_push_back(&srv->listeners, &lst->link);
  return 0;
}

int crpc_server_listen(crpc_server *srv, const char *endpoint, int *port_out) {
  if (port_out) *port_out = 0;
  if (!srv || !endpoint) return CRPC_EINVAL;
  if (srv->closing) return CRPC_ECLOSED;
  crpc__endpoint ep;
  int rc = crpc__endpoint_parse(endpoint, &ep);
  if (rc != 0) return rc;
  if (ep.kind == CRPC__EP_UNIX) return listen_unix(srv, endpoint, &ep);
  struct sockaddr_storage ss;
  if ((rc = resolve_tcp(&ep, &ss, srv->loop)) != 0) return rc;
  int loops = srv->own_loop && srv->opt[CRPC_OPT_LOOPS] > 1;
  if (loops && (rc = crpc__loops_prepare(srv)) != 0) return rc;
  int port = 0;
  rc = crpc__server_listen_tcp(srv, endpoint, (const struct sockaddr *)&ss, loops, &port);
  if (rc != 0) return rc;
  if (loops) {
    /* The other loops bind the port we got (port 0 picks one for all). */
    if (ss.ss_family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    if ((rc = crpc__loops_listen(srv, (const struct sockaddr *)&ss)) != 0) return rc;
  }
  if (port_out) *port_out = port;
  return 0;
}

/* ---- Run / stop / close ---------------------------------------------------------------------- */

int crpc_server_run(crpc_server *srv) {
  if (!srv) return CRPC_EINVAL;
  if (!srv->own_loop) return CRPC_ENOTSUP;
  if (srv->running) return CRPC_ESTATE;
  if (srv->closing) return CRPC_ECLOSED;
  if (atomic_exchange(&srv->stop_requested, 0)) return 0;
  srv->running = 1;
  crpc__loops_start(srv);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  crpc__loops_stop(srv);
  crpc__loops_join(srv);
  srv->running = 0;
  atomic_store(&srv->stop_requested, 0);
  return 0;
}

void crpc_server_stop(crpc_server *srv) {
  if (!srv) return;
  atomic_store(&srv->stop_requested, 1);
  uv_async_send(&srv->stop_async); /* async-signal-safe */
  crpc__loops_stop(srv);
}

static void handle_closed(uv_handle_t *h) {
  crpc_server *srv = h->data;
  srv->pending--;
  crpc__server_maybe_free(srv);
}

static void server_destroy(crpc_server *srv) {
  crpc__free(srv->spare);
  crpc__free(srv->siblings);
  crpc__free(srv->threads);
  crpc__server_calls_free(srv);
  crpc__registry_free(&srv->reg);
  crpc__deadlines_free(&srv->deadlines);
  crpc__free(srv);
}

static void begin_close(crpc_server *srv);

void crpc__server_maybe_free(crpc_server *srv) {
  if (srv->draining && !srv->closing) {
    if (!srv->nconns && !srv->ncalls) begin_close(srv); /* drained before the grace period */
    return;
  }
  if (!srv->closing || srv->pending || srv->nconns || srv->ncalls) return;
  if (!srv->io_closed) {
    srv->io_closed = 1;
    srv->pending++;
    srv->io.flusher.data = srv;
    crpc__io_ctx_close(&srv->io, handle_closed);
    return;
  }
  if (srv->own_loop) return; /* the synchronous close finishes after the loop drained */
  crpc_close_cb cb = srv->close_cb;
  void *ud = srv->close_ud;
  server_destroy(srv);
  if (cb) cb(ud);
}

static void close_listeners(crpc_server *srv) {
  while (!crpc__list_empty(&srv->listeners)) {
    crpc__listener *lst = CRPC__CONTAINER_OF(srv->listeners.next, crpc__listener, link);
    crpc__list_remove(&lst->link);
    unlink_own_socket(lst);
    srv->pending++;
    uv_close(&lst->u.handle, listener_closed);
  }
}

/* Cancels what is left: connections go (with a best-effort GOAWAY), their calls are cancelled;
 * memory goes when handlers have finished them and every handle is closed. */
static void begin_close(crpc_server *srv) {
  srv->closing = 1;
  srv->pending++;
  close_listeners(srv);
  for (crpc__list *e = srv->conns.next; e != &srv->conns;) {
    crpc__list *next = e->next;
    crpc__conn_abort(CRPC__CONTAINER_OF(e, crpc__conn, owner_link), CRPC__GOAWAY_NO_ERROR,
                     "server closing");
    e = next;
  }
  uv_handle_t *handles[] = {(uv_handle_t *)&srv->stop_async, crpc__deadlines_handle(&srv->deadlines),
                            (uv_handle_t *)&srv->sweep, (uv_handle_t *)&srv->drain_timer};
  for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
    srv->pending++;
    handles[i]->data = srv;
    uv_close(handles[i], handle_closed);
  }
  srv->pending--;
  crpc__server_maybe_free(srv);
}

/* Private loop: run it until everything is released, then free. */
static void finish_own_loop(crpc_server *srv) {
  crpc__loops_shutdown_join(srv);
  /* Handlers still holding calls finish them from callbacks of this loop. Calls never finished
   * once the loop has run dry are released here: their handles are dead from now on. */
  uv_run(&srv->own, UV_RUN_DEFAULT);
  if (srv->ncalls) {
    srv->ncalls = 0;
    crpc__server_maybe_free(srv);
    uv_run(&srv->own, UV_RUN_DEFAULT);
  }
  uv_loop_close(&srv->own);
  crpc_close_cb cb = srv->close_cb;
  void *ud = srv->close_ud;
  server_destroy(srv);
  if (cb) cb(ud);
}

void crpc_server_close(crpc_server *srv, crpc_close_cb cb, void *user_data) {
  if (!srv || srv->closing) return;
  crpc__loops_close(srv);
  if (!srv->draining) {
    srv->close_cb = cb;
    srv->close_ud = user_data;
  }
  begin_close(srv);
  if (srv->own_loop) finish_own_loop(srv);
}

static void on_grace_over(uv_timer_t *t) { begin_close(t->data); }

int crpc_server_shutdown(crpc_server *srv, int64_t grace_ms, crpc_close_cb cb, void *user_data) {
  if (!srv || grace_ms < 0) return CRPC_EINVAL;
  if (srv->closing || srv->draining) return CRPC_ECLOSED;
  srv->close_cb = cb;
  srv->close_ud = user_data;
  srv->draining = 1;
  close_listeners(srv);
  for (crpc__list *e = srv->conns.next; e != &srv->conns;) {
    crpc__list *next = e->next;
    crpc__conn *c = CRPC__CONTAINER_OF(e, crpc__conn, owner_link);
    if (c->state == CRPC__CONN_OPEN && crpc__conn_send_goaway(c, CRPC__GOAWAY_NO_ERROR, "server shutting down") == 0 &&
        c->calls.count == 0)
      crpc__conn_close_when_flushed(c);
    e = next;
  }
  uv_timer_start(&srv->drain_timer, on_grace_over, (uint64_t)grace_ms, 0);
  /* The other loops drain at the same time, each on its own thread. */
  crpc__loops_shutdown_start(srv, grace_ms);
  crpc__server_maybe_free(srv);
  if (!srv->own_loop) return 0;
  while (!srv->closing) uv_run(&srv->own, UV_RUN_ONCE);
  finish_own_loop(srv);
  return 0;
}
