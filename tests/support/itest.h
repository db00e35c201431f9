/* The per-transport server fixture (itest): a test server on its own thread, on a transport
 * given as a parameter, and client-side helpers that run a loop until a condition holds (bounded
 * in time).
 *
 * A test case takes an itest_transport as its cmocka state, and ITEST_PER_TRANSPORT() registers
 * it once for TCP over IPv4, TCP over IPv6 and Unix domain sockets.
 *
 * The test server serves the Echo method of the test service itest.Test (itest.proto; its other
 * methods answer UNIMPLEMENTED here). What a handler does is chosen by the request: answer at
 * once, answer after delay_ms from a timer, fail with fail_code, hold the call until it is
 * cancelled, reply with reply_size bytes, or misuse the server API. Every held or
 * delayed call is polled every few milliseconds: once crpc_server_call_cancelled() is true it is
 * finished at once (and counted in cancel_seen), so a closing server never waits for a timer.
 *
 * Nothing here sleeps to synchronise: waits are loop runs with a deadline, or condition
 * variables with a deadline. */
#ifndef ITEST_HARNESS_H
#define ITEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "loop.h"

#include "itest.crpc.h"

/* ---- Transports ---------------------------------------------------------------------------- */

typedef struct itest_transport {
  const char *name;   /* "tcp4", "tcp6", "unix" */
  const char *listen; /* listen endpoint with port 0; NULL for unix (a fresh temp path) */
} itest_transport;

extern const itest_transport itest_tcp4, itest_tcp6, itest_unix;

/* One cmocka case per transport, named "fn/tcp4", ...; the test gets the transport as *state. */
#define ITEST_CASE_(fn, t) {#fn "/" #t, fn, NULL, NULL, (void *)&itest_##t}
#define ITEST_PER_TRANSPORT(fn) ITEST_CASE_(fn, tcp4), ITEST_CASE_(fn, tcp6), ITEST_CASE_(fn, unix)
#define ITEST_TRANSPORT(state) ((const itest_transport *)*(state))

/* A fresh endpoint of transport t that nothing listens on: for unix a path that does not exist,
 * for TCP a port that was just bound and released (connecting to it is refused). */
void itest_unused_endpoint(const itest_transport *t, char *buf, size_t len);

/* ---- The test server ------------------------------------------------------------------------ */

/* Counters kept by the Echo handlers (server thread), read by the test (any thread). */
typedef struct itest_stats {
  atomic_int received;     /* handler invocations */
  atomic_int finished;     /* calls the handlers finished */
  atomic_int cancel_seen;  /* held/delayed calls finished because they were cancelled */
  atomic_int misuse_ok;    /* misuse requests whose API call returned the documented error */
  atomic_int misuse_bad;   /* ... and those that did not */
} itest_stats;

typedef struct itest_server_opts {
  const char *endpoint; /* listen on exactly this endpoint (e.g. to restart); NULL: t's default */
  int64_t max_recv;     /* server MAX_RECV_MESSAGE_SIZE, 0: default */
  int64_t max_send;     /* server MAX_SEND_MESSAGE_SIZE, 0: default */
} itest_server_opts;

typedef struct itest_server itest_server;

/* Starts a loop server on its own thread on transport t (opts may be NULL). Fails the test when
 * it cannot. */
itest_server *itest_server_start(const itest_transport *t, const itest_server_opts *opts);
/* The endpoint clients connect to ("tcp://127.0.0.1:PORT", "tcp://[::1]:PORT", "unix:PATH"). */
const char *itest_server_endpoint(const itest_server *s);
itest_stats *itest_server_stats(itest_server *s);
/* Closes the server on its thread and waits (bounded) until its close callback ran and the
 * thread ended; asserts that the callback ran exactly once, after every call the handlers
 * received was finished, and that the server's loop closes with no handle left. Frees s. */
void itest_server_stop(itest_server *s);
/* The same, also copying the final counters to *final. */
typedef struct itest_final {
  int received, finished, cancel_seen;
} itest_final;
void itest_server_stop_get(itest_server *s, itest_final *final);

/* The Echo handler table, for servers built outside the fixture (lifecycle/itest_server_main.c). The
 * user_data given to itest__test__crpc_register() must be an itest_stats. */
extern const Itest__Test__Handlers itest_echo_handlers;

/* ---- Client side ----------------------------------------------------------------------------- */

/* Runs loop until pred(arg) is true or timeout_ms passed (the predicate is checked after every
 * loop iteration and at least every 2 ms). Returns 1 when pred became true. */
int itest_run_until(uv_loop_t *loop, int (*pred)(void *), void *arg, uint64_t timeout_ms);
/* Runs loop for ms milliseconds (to let anything that should NOT happen show up). */
void itest_run_for(uv_loop_t *loop, uint64_t ms);
/* Closes a loop channel and runs the loop until its close callback ran; asserts it ran once. */
void itest_channel_close(uv_loop_t *loop, crpc_channel *ch);
/* Runs the loop dry and asserts uv_loop_close() succeeds: no handle was left behind. */
void itest_loop_finish(uv_loop_t *loop);

/* Outcome of one async call, filled in by itest_rec_done (the generated Done callback type). */
typedef struct itest_rec {
  int completions;      /* must end at exactly 1 */
  int order;            /* completion order (1-based, per process) */
  crpc_code code;
  char message[256];
  int has_response;
  uint32_t seq;
  size_t payload_len;
  uint8_t payload[64];  /* first bytes of the response payload */
} itest_rec;
void itest_rec_done(const crpc_status *status, const Itest__EchoReply *response, void *ud);

/* pred for itest_run_until: *counter (e.g. a field of itest_stats) >= want. */
typedef struct itest_wait_count {
  atomic_int *counter;
  int want;
} itest_wait_count;
int itest_count_reached(void *w /* itest_wait_count */);

/* pred for itest_run_until: every one of n records completed at least once. */
typedef struct itest_recs {
  itest_rec *r;
  size_t n;
} itest_recs;
int itest_all_done(void *recs /* itest_recs */);

/* Fills *req for call number seq with payload "req-<seq>" written into buf (>= 32 bytes). */
void itest_req_init(Itest__EchoRequest *req, uint32_t seq, char *buf, size_t buflen);
/* Asserts that rec is one OK completion answering the request itest_req_init() made for seq. */
void itest_assert_echo(const itest_rec *rec, uint32_t seq);

#endif
