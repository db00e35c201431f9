/* crpc-bench: crpc's side of the benchmark workload contract (../../../shared/bench/README.md),
 * written the way a user would write it: generated stubs from echo.proto, public API only.
 *
 *   crpc-bench server --port P [--loops N]
 *       Serves bench.Echo/Call on tcp://127.0.0.1:P (P = 0: a free port) until SIGTERM/SIGINT,
 *       from N event loops (threads; CRPC_OPT_LOOPS, default 1).
 *       Prints "crpc-bench: serving on tcp://127.0.0.1:PORT" once it is listening.
 *   crpc-bench --port P --workload W1|W2|W3|W4 [--size N] [--inflight K] [--calls N] [--conns N]
 *       Runs one workload against 127.0.0.1:P and prints exactly one result line:
 *         W1  blocking calls on a private-loop channel, one in flight: 2,000 warm-up calls, then
 *             --calls timed (default 20,000), --size bytes (default 32).
 *             "W1 calls_per_s=... p50_us=... p99_us=..."
 *         W2  --conns loop channels (default 1: one connection) on one loop, --inflight calls in
 *             flight in all (default 64, spread over the connections) through the async stub,
 *             each completion starting the next, --calls in all (default 200,000). One untimed
 *             call per connection first opens it.                         "W2 calls_per_s=..."
 *         W3  as W1 with a 1 MiB payload: 10 warm-up calls, --calls timed (default 300).
 *             "W3 mb_per_s=..."  (payload bytes one way per second, MB = 1e6 bytes)
 *         W4  --conns loop channels (default 1,000), each its own connection, each completing one
 *             tiny call (so the server holds an accepted connection past the handshake); prints
 *             "W4 conns=N", holds them 3 s, closes them and exits.
 * Timings use uv_hrtime() (CLOCK_MONOTONIC), percentiles are taken as raw.c takes them
 * (sorted[calls/2], sorted[calls*99/100]). Any failed call: a message on stderr, exit status 1.
 * Bad arguments: usage on stderr, exit status 2. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "echo.crpc.h"

/* Large enough for W3's 1 MiB messages and for --size up to 60 MiB, on both sides. */
#define BENCH_MAX_MESSAGE (64 << 20)
#define W4_CONNECT_WINDOW 64 /* connections being opened at once (the listen backlog is finite) */

static void usage(void) {
  fprintf(stderr,
          "usage: crpc-bench server --port P [--loops N]\n"
          "       crpc-bench --port P --workload W1|W2|W3|W4 [--size N] [--inflight K] "
          "[--calls N] [--conns N]\n");
  exit(2);
}

static void die_rc(const char *what, int rc) {
  fprintf(stderr, "crpc-bench: %s: %s\n", what, crpc_strerror(rc));
  exit(1);
}

static void die_status(const char *what, const crpc_status *st) {
  fprintf(stderr, "crpc-bench: %s: %s: %s\n", what, crpc_code_name(st->code),
          st->message ? st->message : "");
  exit(1);
}

/* Many connections (W4) need more descriptors than the usual soft limit of 1024. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void set_channel_limits(crpc_channel *ch) {
  int rc;
  if ((rc = crpc_channel_set_option(ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, BENCH_MAX_MESSAGE)) != 0 ||
      (rc = crpc_channel_set_option(ch, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, BENCH_MAX_MESSAGE)) != 0)
    die_rc("crpc_channel_set_option", rc);
}

/* ---- server ---------------------------------------------------------------------------------- */

static crpc_server *server;

static void echo_call(crpc_server_call *call, const Bench__Msg *request, void *user_data) {
  (void)user_data;
  Bench__Msg response = BENCH__MSG__INIT;
  response.payload = request->payload; /* encoded by __reply before the request is released */
  bench__echo__call__reply(call, &response);
}

static const Bench__Echo__Handlers handlers = {.call = echo_call};

static void on_signal(int sig) {
  (void)sig;
  crpc_server_stop(server); /* async-signal-safe */
}

static int run_server(int port, long loops) {
  char endpoint[64];
  snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
  int rc;
  if ((rc = crpc_server_new(&server, NULL)) != 0) die_rc("crpc_server_new", rc);
  if ((rc = crpc_server_set_option(server, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, BENCH_MAX_MESSAGE)) ||
      (rc = crpc_server_set_option(server, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, BENCH_MAX_MESSAGE)) ||
      (rc = crpc_server_set_option(server, CRPC_OPT_LOOPS, loops)))
    die_rc("crpc_server_set_option", rc);
  if ((rc = bench__echo__crpc_register(server, &handlers, NULL)) != 0)
    die_rc("bench__echo__crpc_register", rc);
  int bound = 0;
  if ((rc = crpc_server_listen(server, endpoint, &bound)) != 0) die_rc(endpoint, rc);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("crpc-bench: serving on tcp://127.0.0.1:%d\n", bound);
  fflush(stdout);
  rc = crpc_server_run(server);
  crpc_server_close(server, NULL, NULL);
  if (rc != 0) die_rc("crpc_server_run", rc);
  return 0;
}

/* ---- W1, W3: blocking calls ------------------------------------------------------------------ */

static void blocking_call(crpc_channel *ch, const Bench__Msg *req) {
  Bench__Msg *resp = NULL;
  crpc_status st;
  int rc = bench__echo__call__call(ch, req, &resp, &st, NULL);
  if (rc != 0) die_rc("bench.Echo/Call", rc);
  if (st.code != CRPC_STATUS_OK) die_status("bench.Echo/Call", &st);
  if (resp->payload.len != req->payload.len) {
    fprintf(stderr, "crpc-bench: echo returned %zu bytes, sent %zu\n", resp->payload.len,
            req->payload.len);
    exit(1);
  }
  bench__msg__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void run_blocking(const char *target, int w1, size_t size, long warm, long calls) {
  crpc_channel *ch;
  int rc = crpc_channel_new(&ch, NULL, target);
  if (rc != 0) die_rc(target, rc);
  set_channel_limits(ch);
  uint8_t *payload = malloc(size ? size : 1);
  uint64_t *lat = malloc(sizeof *lat * (size_t)calls);
  if (!payload || !lat) die_rc("malloc", CRPC_ENOMEM);
  memset(payload, 'x', size);
  Bench__Msg req = BENCH__MSG__INIT;
  req.payload.data = payload;
  req.payload.len = size;

  for (long i = 0; i < warm; i++) blocking_call(ch, &req);
  uint64_t t0 = uv_hrtime();
  for (long i = 0; i < calls; i++) {
    uint64_t s = uv_hrtime();
    blocking_call(ch, &req);
    lat[i] = uv_hrtime() - s;
  }
  double elapsed_s = (double)(uv_hrtime() - t0) / 1e9;
  crpc_channel_close(ch, NULL, NULL);

  if (w1) {
    qsort(lat, (size_t)calls, sizeof *lat, cmp_u64);
    printf("W1 calls_per_s=%.0f p50_us=%.1f p99_us=%.1f\n", (double)calls / elapsed_s,
           (double)lat[calls / 2] / 1e3, (double)lat[calls * 99 / 100] / 1e3);
  } else {
    printf("W3 mb_per_s=%.1f\n", (double)size * (double)calls / elapsed_s / 1e6);
  }
  free(lat);
  free(payload);
}

/* ---- W2: K in flight over C loop channels (C = --conns, default 1) ---------------------------- */

typedef struct w2_state w2_state;
typedef struct w2_lane {
  w2_state *s;
  crpc_channel *ch;
  int warm; /* its untimed first call completed */
} w2_lane;

struct w2_state {
  w2_lane *lanes;
  long nlanes, warm, per_lane;
  Bench__Msg req;
  long total, started, done;
  uint64_t t0, t1;
};

static void w2_issue(w2_lane *l, int timed);

static void w2_done(const crpc_status *status, const Bench__Msg *response, void *user_data) {
  w2_lane *l = user_data;
  w2_state *s = l->s;
  if (status->code != CRPC_STATUS_OK) die_status("bench.Echo/Call", status);
  if (response->payload.len != s->req.payload.len) {
    fprintf(stderr, "crpc-bench: echo returned %zu bytes, sent %zu\n", response->payload.len,
            s->req.payload.len);
    exit(1);
  }
  if (!l->warm) { /* the untimed first call: this connection is up */
    l->warm = 1;
    if (++s->warm < s->nlanes) return;
    s->t0 = uv_hrtime(); /* every connection is up: start the clock */
    for (long i = 0; i < s->nlanes; i++)
      for (long k = 0; k < s->per_lane && s->started < s->total; k++) w2_issue(&s->lanes[i], 1);
    return;
  }
  if (++s->done == s->total) {
    s->t1 = uv_hrtime();
    for (long i = 0; i < s->nlanes; i++) crpc_channel_close(s->lanes[i].ch, NULL, NULL);
    return;
  }
  if (s->started < s->total) w2_issue(l, 1);
}

static void w2_issue(w2_lane *l, int timed) {
  int rc = bench__echo__call__start(l->ch, &l->s->req, NULL, w2_done, l, NULL);
  if (rc != 0) die_rc("bench__echo__call__start", rc);
  if (timed) l->s->started++;
}

static void run_w2(const char *target, size_t size, long inflight, long calls, long conns) {
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) die_rc("uv_loop_init", rc);
  w2_state s;
  memset(&s, 0, sizeof s);
  s.nlanes = conns;
  s.per_lane = (inflight + conns - 1) / conns;
  s.lanes = calloc((size_t)conns, sizeof *s.lanes);
  uint8_t *payload = malloc(size ? size : 1);
  if (!payload || !s.lanes) die_rc("malloc", CRPC_ENOMEM);
  memset(payload, 'x', size);
  bench__msg__init(&s.req);
  s.req.payload.data = payload;
  s.req.payload.len = size;
  s.total = calls;
  for (long i = 0; i < conns; i++) {
    s.lanes[i].s = &s;
    if ((rc = crpc_channel_new(&s.lanes[i].ch, &loop, target)) != 0) die_rc(target, rc);
    set_channel_limits(s.lanes[i].ch);
    w2_issue(&s.lanes[i], 0); /* untimed: opens the connection */
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (s.done != s.total) {
    fprintf(stderr, "crpc-bench: W2: the loop ended after %ld of %ld calls\n", s.done, s.total);
    exit(1);
  }
  printf("W2 calls_per_s=%.0f\n", (double)calls / ((double)(s.t1 - s.t0) / 1e9));
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "crpc-bench: W2: loop still busy at exit\n");
  free(s.lanes);
  free(payload);
}

/* ---- W4: many idle connections ---------------------------------------------------------------- */

typedef struct w4_state {
  uv_loop_t *loop;
  const char *target;
  crpc_channel **chans;
  long n, opened, ready;
  Bench__Msg req;
  uv_timer_t hold;
} w4_state;

static void w4_open(w4_state *s);

static void w4_hold_done(uv_timer_t *t) {
  w4_state *s = t->data;
  for (long i = 0; i < s->n; i++) crpc_channel_close(s->chans[i], NULL, NULL);
  uv_close((uv_handle_t *)t, NULL);
}

static void w4_done(const crpc_status *status, const Bench__Msg *response, void *user_data) {
  (void)response;
  w4_state *s = user_data;
  if (status->code != CRPC_STATUS_OK) die_status("bench.Echo/Call", status);
  if (s->opened < s->n) w4_open(s);
  if (++s->ready == s->n) {
    printf("W4 conns=%ld\n", s->n);
    fflush(stdout);
    uv_timer_start(&s->hold, w4_hold_done, 3000, 0);
  }
}

static void w4_open(w4_state *s) {
  crpc_channel **ch = &s->chans[s->opened++];
  int rc = crpc_channel_new(ch, s->loop, s->target);
  if (rc != 0) die_rc(s->target, rc);
  if ((rc = bench__echo__call__start(*ch, &s->req, NULL, w4_done, s, NULL)) != 0)
    die_rc("bench__echo__call__start", rc);
}

static void run_w4(const char *target, long conns) {
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) die_rc("uv_loop_init", rc);
  w4_state s;
  memset(&s, 0, sizeof s);
  s.loop = &loop;
  s.target = target;
  s.n = conns;
  s.chans = calloc((size_t)conns, sizeof *s.chans);
  if (!s.chans) die_rc("calloc", CRPC_ENOMEM);
  bench__msg__init(&s.req); /* empty payload: the call only proves the connection serves */
  uv_timer_init(&loop, &s.hold);
  s.hold.data = &s;
  for (long i = 0; i < W4_CONNECT_WINDOW && s.opened < s.n; i++) w4_open(&s);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (s.ready != s.n) {
    fprintf(stderr, "crpc-bench: W4: the loop ended with %ld of %ld connections\n", s.ready, s.n);
    exit(1);
  }
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "crpc-bench: W4: loop still busy at exit\n");
  free(s.chans);
}

/* ---- main ---------------------------------------------------------------------------------- */

static long parse_num(const char *flag, const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "crpc-bench: %s wants an integer in [%ld, %ld], got %s\n", flag, lo, hi,
            s ? s : "nothing");
    usage();
  }
  return v;
}

int main(int argc, char **argv) {
  int is_server = 0;
  long port = -1, size = -1, inflight = 64, calls = 0, conns = -1, loops = 1;
  const char *workload = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "server")) {
      is_server = 1;
      continue;
    }
    if (!strcmp(a, "--port")) port = parse_num(a, v, 0, 65535);
    else if (!strcmp(a, "--workload")) workload = v;
    else if (!strcmp(a, "--size")) size = parse_num(a, v, 0, BENCH_MAX_MESSAGE - 1024);
    else if (!strcmp(a, "--inflight")) inflight = parse_num(a, v, 1, 1 << 20);
    else if (!strcmp(a, "--calls")) calls = parse_num(a, v, 1, LONG_MAX / 2);
    else if (!strcmp(a, "--conns")) conns = parse_num(a, v, 1, 1 << 20);
    else if (!strcmp(a, "--loops")) loops = parse_num(a, v, 1, 64);
    else usage();
    i++;
  }
  if (port < 0) usage();
  raise_fd_limit();
  if (is_server) return run_server((int)port, loops);
  if (port == 0 || !workload) usage();

  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%ld", port);
  if (!strcmp(workload, "W1")) {
    run_blocking(target, 1, size < 0 ? 32 : (size_t)size, 2000, calls ? calls : 20000);
  } else if (!strcmp(workload, "W2")) {
    run_w2(target, size < 0 ? 32 : (size_t)size, inflight, calls ? calls : 200000,
           conns < 0 ? 1 : conns);
  } else if (!strcmp(workload, "W3")) {
    run_blocking(target, 0, size < 0 ? 1u << 20 : (size_t)size, 10, calls ? calls : 300);
  } else if (!strcmp(workload, "W4")) {
    run_w4(target, conns < 0 ? 1000 : conns);
  } else {
    fprintf(stderr, "crpc-bench: unknown workload %s\n", workload);
    usage();
  }
  return 0;
}
