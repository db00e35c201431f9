/* The chaos test's server, run as a separate process so that the test can SIGKILL it.
 *
 *   chaos_server --tcp tcp://HOST:PORT [--unix unix:PATH] [--ledger PATH] [--grace MS]
 *                [--max-calls N]
 *
 * A loop server serving chaos.Ledger/Run. Each call's id is counted in the ledger (ledger.h)
 * before anything else happens; then the call is answered at once or, when the request asks for a
 * delay, from a timer (finished CANCELLED instead if it is cancelled first). A stale unix socket
 * path is removed before listening.
 *
 * Prints "listening on port PORT" once it serves on every endpoint. SIGTERM or SIGINT drains:
 * crpc_server_shutdown() with the grace period (default 250 ms); when that has completed and the
 * loop closes cleanly the process exits 0 (3 if a handle was left on the loop). Exit 1: bad
 * arguments or ledger; 4: listen failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chaos.crpc.h"
#include "ledger.h"
#include "payload.h"

typedef struct server_state {
  uv_loop_t loop;
  crpc_server *srv;
  chaos_ledger ledger;
  int have_ledger;
  uv_signal_t sig_term, sig_int;
  int64_t grace_ms;
  int draining;
} server_state;

static server_state S;

/* A call answered from a timer. */
typedef struct held_call {
  uv_timer_t timer;
  crpc_server_call *call; /* NULL once finished */
  const Chaos__Req *req;  /* the call's, valid until it is finished */
} held_call;

static void reply(crpc_server_call *call, const Chaos__Req *req) {
  uint8_t buf[CHAOS_PAYLOAD_MAX];
  size_t n = req->payload.len <= sizeof buf ? req->payload.len : sizeof buf;
  chaos_payload_answer(req->payload.data, n, buf);
  Chaos__Rep rep = CHAOS__REP__INIT;
  rep.id = req->id;
  rep.payload.data = buf;
  rep.payload.len = n;
  chaos__ledger__run__reply(call, &rep);
}

static void held_free(uv_handle_t *h) { free(h->data); }

static void held_finish(held_call *h, int answer) {
  if (!h->call) return;
  crpc_server_call *call = h->call;
  h->call = NULL;
  if (answer)
    reply(call, h->req);
  else
    crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, "cancelled while held");
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, held_free);
}

static void held_due(uv_timer_t *t) { held_finish(t->data, 1); }
static void held_cancelled(crpc_server_call *call, void *ud) {
  (void)call;
  held_finish(ud, 0);
}

static void run(crpc_server_call *call, const Chaos__Req *req, void *ud) {
  (void)ud;
  if (S.have_ledger) chaos_ledger_record(&S.ledger, req->id);
  if (req->delay_ms == 0) {
    reply(call, req);
    return;
  }
  held_call *h = calloc(1, sizeof *h);
  if (!h) {
    crpc_server_call_fail(call, CRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  h->call = call;
  h->req = req;
  uv_timer_init(&S.loop, &h->timer);
  h->timer.data = h;
  uv_timer_start(&h->timer, held_due, req->delay_ms, 0);
  crpc_server_call_on_cancel(call, held_cancelled, h); /* runs now if already cancelled */
}

static const Chaos__Ledger__Handlers handlers = {.run = run};

static void drained(void *ud) {
  (void)ud;
  S.srv = NULL;
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)sig;
  (void)signum;
  if (S.draining) return;
  S.draining = 1;
  uv_close((uv_handle_t *)&S.sig_term, NULL);
  uv_close((uv_handle_t *)&S.sig_int, NULL);
  if (crpc_server_shutdown(S.srv, S.grace_ms, drained, NULL) != 0) {
    fprintf(stderr, "chaos_server: crpc_server_shutdown failed\n");
    _exit(2);
  }
}

static void print_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "  left: %s%s\n", uv_handle_type_name(uv_handle_get_type(h)),
          uv_is_closing(h) ? " (closing)" : "");
}

static const char *arg_value(int argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < argc; i += 2)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

static int listen_all(const char *tcp, const char *unix_ep, int *port) {
  int rc = crpc_server_listen(S.srv, tcp, port);
  if (rc != 0) {
    fprintf(stderr, "chaos_server: listen %s: %s\n", tcp, crpc_strerror(rc));
    return rc;
  }
  if (!unix_ep) return 0;
  unlink(unix_ep + strlen("unix:"));
  if ((rc = crpc_server_listen(S.srv, unix_ep, NULL)) != 0)
    fprintf(stderr, "chaos_server: listen %s: %s\n", unix_ep, crpc_strerror(rc));
  return rc;
}

int main(int argc, char **argv) {
  const char *tcp = arg_value(argc, argv, "--tcp"), *unix_ep = arg_value(argc, argv, "--unix");
  const char *ledger = arg_value(argc, argv, "--ledger"), *grace = arg_value(argc, argv, "--grace");
  const char *max_calls = arg_value(argc, argv, "--max-calls");
  if (!tcp || (argc - 1) % 2 != 0 || (unix_ep && strncmp(unix_ep, "unix:", 5) != 0)) {
    fprintf(stderr, "usage: chaos_server --tcp tcp://HOST:PORT [--unix unix:PATH] [--ledger PATH]"
                    " [--grace MS] [--max-calls N]\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  S.grace_ms = grace ? atoll(grace) : 250;
  if (ledger && chaos_ledger_open(&S.ledger, ledger) != 0) {
    fprintf(stderr, "chaos_server: cannot open ledger %s\n", ledger);
    return 1;
  }
  S.have_ledger = ledger != NULL;
  uv_loop_init(&S.loop);
  int port = 0, rc = crpc_server_new(&S.srv, &S.loop);
  if (rc == 0 && max_calls) rc = crpc_server_set_option(S.srv, CRPC_OPT_MAX_CALLS_PER_CONN, atoll(max_calls));
  if (rc == 0) rc = chaos__ledger__crpc_register(S.srv, &handlers, NULL);
  if (rc != 0) {
    fprintf(stderr, "chaos_server: %s\n", crpc_strerror(rc));
    return 1;
  }
  if (listen_all(tcp, unix_ep, &port) != 0) {
    crpc_server_close(S.srv, NULL, NULL);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    uv_loop_close(&S.loop);
    return 4;
  }
  uv_signal_init(&S.loop, &S.sig_term);
  uv_signal_init(&S.loop, &S.sig_int);
  uv_signal_start(&S.sig_term, on_signal, SIGTERM);
  uv_signal_start(&S.sig_int, on_signal, SIGINT);
  printf("listening on port %d\n", port);
  fflush(stdout);
  uv_run(&S.loop, UV_RUN_DEFAULT);
  int leftover = S.srv != NULL || uv_loop_close(&S.loop) != 0;
  if (leftover) {
    fprintf(stderr, "chaos_server: loop did not close cleanly after the drain\n");
    uv_walk(&S.loop, print_handle, NULL);
  }
  if (S.have_ledger) chaos_ledger_close(&S.ledger);
  return leftover ? 3 : 0;
}
