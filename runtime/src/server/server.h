/* The server object, shared by server.c (listen, accept, lifecycle) and server_call.c (calls). */
#ifndef CRPC_SERVER_INTERNAL_H
#define CRPC_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include <uv.h>

#include "conn/conn.h"
#include "call/deadline.h"
#include "call/pool.h"
#include "crpc/server.h"
#include "base/list.h"
#include "server/registry.h"
#include "transport/stream.h"

typedef struct crpc__listener {
  crpc__list link;
  crpc__uv_stream u;
  crpc_server *srv;
  char *label; /* the endpoint, for messages */
  char *path;  /* unix:PATH: the socket file this listener created (NULL otherwise) ... */
  dev_t dev;   /* ... and its device and inode, read right after bind(): at close only that */
  ino_t ino;   /*     file is removed, never whatever has replaced it at the path since */
} crpc__listener;

struct crpc_server {
  uv_loop_t *loop;
  int own_loop;
  uv_loop_t own;
  int64_t opt[CRPC_OPT_COUNT_];
  int listening;
  crpc__io_ctx io;
  crpc__registry reg;
  crpc__list listeners;
  crpc__list conns;
  size_t nconns;
  crpc__list calls;  /* calls not finished by their handler yet */
  size_t ncalls;
  crpc__call_pool pool; /* spare call objects */
  crpc__deadlines deadlines;  /* calls with a deadline */
  uv_timer_t sweep;           /* periodic: handshake, idle and stall timeouts */
  uv_timer_t drain_timer;     /* shutdown grace period */
  int draining;
  uv_async_t stop_async;
  void *spare;       /* a stream handle kept to accept (and close) a connection when out of memory:
                        a listener that does not accept is not polled again by libuv */
  /* LOOPS > 1: servers of our own, one per extra loop and thread, listening on our TCP ports. */
  crpc_server **siblings;
  size_t nsiblings;
  uv_thread_t *threads;
  crpc_server *parent;
  atomic_int siblings_live; /* cleared before the siblings are shut down and freed */
  void *shutdown_args;      /* while the siblings shut down on their threads */
  atomic_int stop_requested;
  int running;
  int closing, pending, io_closed;
  crpc_close_cb close_cb;
  void *close_ud;
};

/* server_call.c */
void crpc__server_on_call(crpc__conn *c, const crpc__frame *f, const crpc__call_hdr *hdr);
void crpc__server_calls_free(crpc_server *srv);      /* pool, and calls abandoned at close */
/* server.c */
void crpc__server_maybe_free(crpc_server *srv);
/* server_loops.c */
int crpc__loops_prepare(crpc_server *srv);          /* creates the siblings (first TCP listen) */
int crpc__loops_listen(crpc_server *srv, const struct sockaddr *sa); /* bind them too */
int crpc__loops_register(crpc_server *srv, const crpc_service_desc *svc, const void *impl,
                         void *user_data);
void crpc__loops_start(crpc_server *srv);
void crpc__loops_stop(crpc_server *srv);           /* async-signal-safe */
void crpc__loops_join(crpc_server *srv);
void crpc__loops_shutdown_start(crpc_server *srv, int64_t grace_ms); /* threads, in parallel */
void crpc__loops_shutdown_join(crpc_server *srv);
void crpc__loops_close(crpc_server *srv);
/* server.c: binds a TCP listener (SO_REUSEPORT when reuse), listens, returns the bound port. */
int crpc__server_listen_tcp(crpc_server *srv, const char *label, const struct sockaddr *sa,
                            int reuse, int *port_out);

#endif
