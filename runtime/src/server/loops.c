/* LOOPS > 1: one server per extra loop and thread. Each is an ordinary private-loop server that
 * listens on the parent's TCP ports with SO_REUSEPORT, so the kernel spreads new connections
 * over the loops and a connection never changes thread; nothing is shared between loops but
 * the (read-only) method tables and the user's handler tables. */
#include "base/alloc.h"
#include "crpc/error.h"
#include "server/registry.h"
#include "server/server.h"

int crpc__loops_prepare(crpc_server *srv) {
  if (srv->nsiblings) return 0;
  size_t n = (size_t)srv->opt[CRPC_OPT_LOOPS] - 1;
  srv->siblings = crpc__calloc(n, sizeof *srv->siblings);
  srv->threads = crpc__calloc(n, sizeof *srv->threads);
  if (!srv->siblings || !srv->threads) return CRPC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    crpc_server *sib;
    int rc = crpc_server_new(&sib, NULL);
    if (rc != 0) return rc;
    for (int o = 0; o < CRPC_OPT_COUNT_; o++) sib->opt[o] = srv->opt[o];
    sib->opt[CRPC_OPT_LOOPS] = 1;
    sib->parent = srv;
    srv->siblings[srv->nsiblings++] = sib;
    atomic_store(&srv->siblings_live, 1);
    /* Services registered so far: each distinct service once. */
    for (size_t s = 0; s < srv->reg.cap; s++) {
      const crpc__reg_entry *e = &srv->reg.slots[s];
      if (!e->method || e->method != &e->service->methods[0]) continue;
      if ((rc = crpc__registry_add(&sib->reg, e->service, e->impl, e->user_data)) != 0) return rc;
    }
  }
  return 0;
}

int crpc__loops_listen(crpc_server *srv, const struct sockaddr *sa) {
  for (size_t i = 0; i < srv->nsiblings; i++) {
    crpc__listener *first = CRPC__CONTAINER_OF(srv->listeners.prev, crpc__listener, link);
    int rc = crpc__server_listen_tcp(srv->siblings[i], first->label, sa, 1, NULL);
    if (rc != 0) return rc;
  }
  return 0;
}

int crpc__loops_register(crpc_server *srv, const crpc_service_desc *svc, const void *impl,
                         void *user_data) {
  for (size_t i = 0; i < srv->nsiblings; i++) {
    int rc = crpc__registry_add(&srv->siblings[i]->reg, svc, impl, user_data);
    if (rc != 0) return rc;
  }
  return 0;
}

static void sibling_main(void *arg) { crpc_server_run(arg); }

void crpc__loops_start(crpc_server *srv) {
  for (size_t i = 0; i < srv->nsiblings; i++)
    uv_thread_create(&srv->threads[i], sibling_main, srv->siblings[i]);
}

void crpc__loops_stop(crpc_server *srv) {
  if (!atomic_load(&srv->siblings_live)) return;
  for (size_t i = 0; i < srv->nsiblings; i++) crpc_server_stop(srv->siblings[i]);
}

void crpc__loops_join(crpc_server *srv) {
  for (size_t i = 0; i < srv->nsiblings; i++) uv_thread_join(&srv->threads[i]);
}

typedef struct shutdown_arg {
  crpc_server *srv;
  int64_t grace_ms;
} shutdown_arg;

static void sibling_shutdown(void *p) {
  shutdown_arg *a = p;
  crpc_server_shutdown(a->srv, a->grace_ms, NULL, NULL);
}

void crpc__loops_shutdown_start(crpc_server *srv, int64_t grace_ms) {
  size_t n = srv->nsiblings;
  if (!n) return;
  atomic_store(&srv->siblings_live, 0);
  shutdown_arg *args = crpc__calloc(n, sizeof *args);
  if (!args) {
    crpc__loops_close(srv);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    args[i].srv = srv->siblings[i];
    args[i].grace_ms = grace_ms;
    uv_thread_create(&srv->threads[i], sibling_shutdown, &args[i]);
  }
  srv->shutdown_args = args;
}

void crpc__loops_shutdown_join(crpc_server *srv) {
  if (!srv->shutdown_args) return;
  for (size_t i = 0; i < srv->nsiblings; i++) uv_thread_join(&srv->threads[i]);
  crpc__free(srv->shutdown_args);
  srv->shutdown_args = NULL;
  srv->nsiblings = 0;
}

void crpc__loops_close(crpc_server *srv) {
  crpc__loops_shutdown_join(srv);
  atomic_store(&srv->siblings_live, 0);
  for (size_t i = 0; i < srv->nsiblings; i++) crpc_server_close(srv->siblings[i], NULL, NULL);
  srv->nsiblings = 0;
}
