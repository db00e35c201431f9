/* Chaos test: thousands of unary calls over several connections while the server process is
 * SIGKILLed and restarted, drains (crpc_server_shutdown with a grace period) and restarts,
 * connections are reset by a relay, and clients cancel and time out. Afterwards a ledger on each
 * side proves:
 *   - every call completed exactly once on the client, with a status from {OK, CANCELLED,
 *     DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED}, and OK only with the right response;
 *   - no call ran twice on the server (each request carries a unique id; servers count the ids
 *     they run in a file-backed ledger that survives SIGKILL, ledger.h);
 *   - an OK call ran exactly once; a call refused by a GOAWAY ("not processed ... safe to
 *     retry") or refused RESOURCE_EXHAUSTED never ran;
 *   - once the chaos is over, every channel (loop and private-loop) answers OK again within 30 s
 *     (recovery probes, with ids of their own);
 *   - the server exits 0 after each drain (its loop closes clean, LSan finds nothing), and the
 *     test's own loop closes with no handle left.
 *
 *   chaos_test [--calls N] [--kills N] [--drains N] [--seconds S] [--seed N] [--long]
 *
 * Default (CI): 5000 calls over ~8 s, 3 kills, 2 drains. --long: 100000 calls, 20 kills,
 * 10 drains over 120 s. Calls: 90% async on 4 loop channels of the test's loop (one TCP, one unix
 * socket, two through the resetting relay, proxy.h), issued steadily plus in bursts aimed at one
 * channel at a time (past the server's MAX_CALLS_PER_CONN of 128); 10% blocking, from 2 threads
 * with private-loop channels (one direct, one through the relay), cancelled now and then through
 * cancel tokens from the loop thread. Per call, chosen from its id: the server answers at once
 * or after 1-600 ms; 15% have a 5-300 ms deadline; 10% are cancelled (at once, later, or from
 * inside another call's callback).
 *
 * No assertion depends on timing; a watchdog aborts with the stuck calls listed when nothing
 * completes for 60 s. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chaos.crpc.h"
#include "ledger.h"
#include "payload.h"
#include "proc.h"
#include "proxy.h"

#ifndef CHAOS_SERVER_PATH
#error "CHAOS_SERVER_PATH must name the chaos_server executable"
#endif

#define N_CHANNELS 4
#define N_THREADS 2
#define SERVER_MAX_CALLS "128"
#define SERVER_GRACE_MS "250"
#define STALL_LIMIT_MS 60000
#define MAX_MESSAGES 64
#define N_PROBE_IDS 8192
#define RECOVERY_LIMIT_MS 30000

/* ---- Configuration and per-call plans ------------------------------------------------------- */

typedef struct config {
  uint32_t calls;
  int kills, drains;
  uint64_t span_ms; /* calls are issued over this long */
  uint64_t seed;
} config;

static uint64_t mix(uint64_t x) { /* splitmix64 */
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

enum { CANCEL_NONE, CANCEL_NOW, CANCEL_LATER };

typedef struct plan {
  uint32_t delay_ms;   /* server answers after this long */
  int64_t timeout_ms;  /* 0: none */
  int cancel;
  uint32_t cancel_after_ms;
} plan;

static uint64_t g_seed;

static uint32_t g_probe_base; /* ids from here on are recovery probes: plain calls */

static plan plan_for(uint64_t id) {
  if (id >= g_probe_base) return (plan){0};
  uint64_t r = mix(g_seed ^ (id * 0x100000001b3u));
  plan p = {0};
  unsigned d = (unsigned)(r % 100);
  r /= 100;
  p.delay_ms = d < 45 ? 0 : d < 85 ? 1 + (uint32_t)(r % 100) : 100 + (uint32_t)(r % 500);
  r /= 1000;
  if (r % 100 < 15) p.timeout_ms = 5 + (int64_t)((r / 100) % 296);
  r /= 100000;
  unsigned c = (unsigned)(r % 100);
  r /= 100;
  if (c < 2)
    p.cancel = CANCEL_NOW;
  else if (c < 10) {
    p.cancel = CANCEL_LATER;
    p.cancel_after_ms = (uint32_t)(r % 250);
  }
  return p;
}

/* ---- Client-side ledger ----------------------------------------------------------------------- */

enum { F_REFUSED = 1, F_BADRESP = 2, F_STARTERR = 4, F_CANCEL = 8 };

typedef struct rec {
  crpc_call *call;     /* async: the handle while in flight */
  int64_t cancel_at;   /* async: loop time to cancel at, or -1 */
  uint32_t slot;       /* async: index in the in-flight array */
  uint16_t msg;        /* index in the message table */
  uint8_t completions, code, flags, chan;
} rec;

/* Distinct status texts seen, with counts (any thread). */
typedef struct msg_entry {
  int code;
  char text[120];
  unsigned count;
} msg_entry;

static struct {
  config cfg;
  uv_loop_t loop;
  rec *recs;
  uint32_t n_async, n_blocking; /* n_blocking per thread */
  uint32_t n_steady, burst_size;
  int n_bursts, bursts_done;
  uint32_t next_async, done_async;
  uint32_t *inflight, n_inflight, max_inflight;
  crpc_channel *ch[N_CHANNELS];
  char targets[N_CHANNELS][256];
  pthread_t threads[N_THREADS];
  crpc_cancel_token *tokens[N_THREADS];
  char thread_target[N_THREADS][256];
  atomic_uint blocking_done;
  atomic_int threads_done;      /* blocking threads finished, recovery probes included */
  atomic_int sched_done;        /* blocking threads through their scheduled calls */
  atomic_int probing;           /* the chaos is over: probe until every channel answers OK */
  atomic_uint next_probe;
  int thread_recovered[N_THREADS];
  int chan_recovered[N_CHANNELS], chan_probe_busy[N_CHANNELS];
  uint64_t probe_start;
  int threads_started;
  uint64_t t0_mono_ns;
  chaos_ledger ledger;
  char dir[64], ledger_path[128], unix_path[128];
  int port, proxy_port;
  chaos_proxy *proxy;
  /* server process */
  chaos_proc *server;
  enum { SRV_STARTING, SRV_UP, SRV_KILLED, SRV_DRAINING, SRV_DOWN, SRV_FINAL, SRV_GONE } srv;
  uint64_t restart_at;
  int incarnations, start_failures;
  int kills_done, drains_done;
  /* schedule */
  uint64_t t0;
  int n_events, events_done;
  uint64_t next_reset_at;
  unsigned resets, pairs_reset, token_cancels, nested_cancels;
  uint32_t last_progress_count;
  uint64_t last_progress_at;
  uv_timer_t pump, ctl;
  int closing_channels;
  size_t relayed;
  /* results */
  pthread_mutex_t mu;
  msg_entry msgs[MAX_MESSAGES];
  int n_msgs;
  int failures;
} T;

static void failure(const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&T.mu);
  if (++T.failures <= 30) {
    fprintf(stderr, "FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
  }
  pthread_mutex_unlock(&T.mu);
}

/* text with digit runs as '#' and the test's directory as $DIR, so that messages naming ports,
 * paths and deadlines fall into one entry each. */
static void normalize(const char *text, char *out, size_t len) {
  size_t o = 0, dl = strlen(T.dir);
  while (*text && o + 5 < len) {
    if (strncmp(text, T.dir, dl) == 0) {
      memcpy(out + o, "$DIR", 4);
      o += 4;
      text += dl;
    } else if (*text >= '0' && *text <= '9') {
      out[o++] = '#';
      while (*text >= '0' && *text <= '9') text++;
    } else {
      out[o++] = *text++;
    }
  }
  out[o] = '\0';
}

static uint16_t note_message(int code, const char *raw) {
  char text[sizeof T.msgs[0].text];
  normalize(raw ? raw : "(none)", text, sizeof text);
  pthread_mutex_lock(&T.mu);
  int i;
  for (i = 0; i < T.n_msgs; i++)
    if (T.msgs[i].code == code && strncmp(T.msgs[i].text, text, sizeof T.msgs[i].text - 1) == 0) break;
  if (i == T.n_msgs && T.n_msgs < MAX_MESSAGES) {
    T.msgs[i].code = code;
    snprintf(T.msgs[i].text, sizeof T.msgs[i].text, "%s", text);
    T.n_msgs++;
  }
  if (i < T.n_msgs) T.msgs[i].count++;
  pthread_mutex_unlock(&T.mu);
  return (uint16_t)(i < T.n_msgs ? i : MAX_MESSAGES);
}

static int allowed_code(int code) {
  return code == CRPC_STATUS_OK || code == CRPC_STATUS_CANCELLED ||
         code == CRPC_STATUS_DEADLINE_EXCEEDED || code == CRPC_STATUS_UNAVAILABLE ||
         code == CRPC_STATUS_RESOURCE_EXHAUSTED;
}

/* Records one completion of call id (any thread; each record is written by one thread only). */
static void record_completion(uint32_t id, const crpc_status *st, const Chaos__Rep *rep) {
  rec *r = &T.recs[id];
  if (r->completions < 255) r->completions++;
  if (r->completions > 1) {
    failure("call %u completed %u times (now %s: %s)", id, r->completions, crpc_code_name(st->code),
            st->message ? st->message : "");
    return;
  }
  r->code = (uint8_t)st->code;
  r->msg = note_message(st->code, st->message);
  if (st->code == CRPC_STATUS_OK) {
    if (!rep || rep->id != id || !chaos_payload_check(id, rep->payload.data, rep->payload.len))
      r->flags |= F_BADRESP;
  } else if (rep) {
    r->flags |= F_BADRESP;
  }
  if (st->code == CRPC_STATUS_UNAVAILABLE && st->message && strstr(st->message, "not processed"))
    r->flags |= F_REFUSED;
}

/* ---- Async calls (loop thread) ------------------------------------------------------------------ */

static void inflight_remove(rec *r) {
  uint32_t last = T.inflight[--T.n_inflight];
  T.inflight[r->slot] = last;
  T.recs[last].slot = r->slot;
}

static void on_done(const crpc_status *st, const Chaos__Rep *rep, void *ud) {
  rec *r = ud;
  uint32_t id = (uint32_t)(r - T.recs);
  int first = r->completions == 0;
  record_completion(id, st, rep);
  if (!first) return;
  r->call = NULL;
  inflight_remove(r);
  T.done_async++;
  /* Now and then cancel another call from inside this callback. */
  if (mix(id ^ 0xc0ffee) % 200 == 0 && T.n_inflight > 0) {
    rec *o = &T.recs[T.inflight[mix(id) % T.n_inflight]];
    o->flags |= F_CANCEL;
    T.nested_cancels++;
    crpc_call_cancel(o->call);
  }
}

static void start_async(uint32_t id, int chan) {
  rec *r = &T.recs[id];
  plan p = plan_for(id);
  uint8_t buf[CHAOS_PAYLOAD_MAX];
  Chaos__Req req = CHAOS__REQ__INIT;
  req.id = id;
  req.delay_ms = p.delay_ms;
  req.payload.data = buf;
  req.payload.len = chaos_payload_fill(id, buf);
  crpc_call_opts o = {.timeout_ms = p.timeout_ms};
  r->chan = (uint8_t)chan;
  r->cancel_at = -1;
  int rc = chaos__ledger__run__start(T.ch[chan], &req, &o, on_done, r, &r->call);
  if (rc != 0) {
    r->flags |= F_STARTERR;
    failure("call %u: start failed: %s", id, crpc_strerror(rc));
    T.done_async++;
    return;
  }
  r->slot = T.n_inflight;
  T.inflight[T.n_inflight++] = id;
  if (T.n_inflight > T.max_inflight) T.max_inflight = T.n_inflight;
  if (p.cancel == CANCEL_NOW) {
    r->flags |= F_CANCEL;
    crpc_call_cancel(r->call); /* completes before it returns */
  } else if (p.cancel == CANCEL_LATER) {
    r->cancel_at = (int64_t)(uv_now(&T.loop) + p.cancel_after_ms);
  }
}

static void cancel_due(void) {
  int64_t now = (int64_t)uv_now(&T.loop);
  uint32_t due[256], n = 0;
  for (uint32_t i = 0; i < T.n_inflight && n < 256; i++) {
    rec *r = &T.recs[T.inflight[i]];
    if (r->cancel_at >= 0 && r->cancel_at <= now) due[n++] = T.inflight[i];
  }
  for (uint32_t i = 0; i < n; i++) {
    rec *r = &T.recs[due[i]];
    if (!r->call) continue; /* completed meanwhile (a nested cancel) */
    r->cancel_at = -1;
    r->flags |= F_CANCEL;
    crpc_call_cancel(r->call);
  }
}

/* Issues async calls: a steady stream over the span, plus bursts aimed at one channel each. */
static void pump(uv_timer_t *t) {
  (void)t;
  uint64_t el = uv_now(&T.loop) - T.t0, span = T.cfg.span_ms;
  uint32_t steady = (uint32_t)(el >= span ? T.n_steady : T.n_steady * el / span);
  while (T.bursts_done < T.n_bursts && el >= span * (uint64_t)(T.bursts_done + 1) / (uint64_t)(T.n_bursts + 1)) {
    int chan = T.bursts_done % N_CHANNELS;
    for (uint32_t i = 0; i < T.burst_size && T.next_async < T.n_async; i++) start_async(T.next_async++, chan);
    T.bursts_done++;
  }
  uint32_t target = steady + (uint32_t)T.bursts_done * T.burst_size;
  if (target > T.n_async || el >= span) target = T.n_async;
  while (T.next_async < target) {
    uint32_t id = T.next_async++;
    start_async(id, (int)(mix(id) % N_CHANNELS));
  }
  cancel_due();
  for (int i = 0; i < N_THREADS; i++)
    if (T.threads_started && mix(el ^ ((uint64_t)i << 40)) % 250 == 0) {
      crpc_cancel_token_cancel(T.tokens[i]);
      T.token_cancels++;
    }
}

/* ---- Blocking calls (their own threads) -------------------------------------------------------- */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t when) {
  uint64_t now = mono_ns();
  if (when <= now) return;
  struct timespec ts = {(time_t)((when - now) / 1000000000u), (long)((when - now) % 1000000000u)};
  nanosleep(&ts, NULL);
}

static int channel_options(crpc_channel *ch) {
  int rc = crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_INITIAL_MS, 10);
  if (rc == 0) rc = crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 200);
  if (rc == 0) rc = crpc_channel_set_option(ch, CRPC_OPT_CONNECT_TIMEOUT_MS, 3000);
  return rc;
}

static void blocking_call(crpc_channel *ch, int t, uint32_t id) {
  plan p = plan_for(id);
  uint8_t buf[CHAOS_PAYLOAD_MAX];
  Chaos__Req req = CHAOS__REQ__INIT;
  req.id = id;
  req.delay_ms = p.delay_ms;
  req.payload.data = buf;
  req.payload.len = chaos_payload_fill(id, buf);
  crpc_cancel_token_reset(T.tokens[t]);
  if (p.cancel == CANCEL_NOW) {
    T.recs[id].flags |= F_CANCEL;
    crpc_cancel_token_cancel(T.tokens[t]);
  }
  crpc_call_opts o = {.timeout_ms = p.timeout_ms, .cancel = T.tokens[t]};
  Chaos__Rep *rep = NULL;
  crpc_status st = {0};
  int rc = chaos__ledger__run__call(ch, &req, &rep, &st, &o);
  if (rc != 0) {
    T.recs[id].flags |= F_STARTERR;
    failure("blocking call %u: %s (%s)", id, crpc_strerror(rc), st.message ? st.message : "");
  }
  record_completion(id, &st, rep);
  if (rep) chaos__rep__free_unpacked(rep, NULL);
  crpc_status_reset(&st);
  atomic_fetch_add(&T.blocking_done, 1);
}

static void *blocking_main(void *arg) {
  int t = (int)(intptr_t)arg;
  crpc_channel *ch;
  int rc = crpc_channel_new(&ch, NULL, T.thread_target[t]);
  if (rc == 0) rc = channel_options(ch);
  if (rc != 0) {
    failure("blocking thread %d: channel: %s", t, crpc_strerror(rc));
    atomic_fetch_add(&T.threads_done, 1);
    return NULL;
  }
  uint32_t base = T.n_async + (uint32_t)t * T.n_blocking;
  uint64_t span_ns = T.cfg.span_ms * 1000000u;
  for (uint32_t i = 0; i < T.n_blocking; i++) {
    sleep_until_ns(T.t0_mono_ns + span_ns * i / T.n_blocking);
    blocking_call(ch, t, base + i);
  }
  atomic_fetch_add(&T.sched_done, 1);
  /* Recovery: once the chaos is over, this channel must answer OK again. */
  while (!atomic_load(&T.probing)) sleep_until_ns(mono_ns() + 10000000u);
  uint64_t until = mono_ns() + (uint64_t)RECOVERY_LIMIT_MS * 1000000u;
  while (!T.thread_recovered[t] && mono_ns() < until) {
    uint32_t id = atomic_fetch_add(&T.next_probe, 1);
    if (id >= g_probe_base + N_PROBE_IDS) break;
    blocking_call(ch, t, id);
    if (T.recs[id].code == CRPC_STATUS_OK && T.recs[id].completions == 1) T.thread_recovered[t] = 1;
    else sleep_until_ns(mono_ns() + 50000000u);
  }
  crpc_channel_close(ch, NULL, NULL);
  atomic_fetch_add(&T.threads_done, 1);
  return NULL;
}

/* ---- The server process ----------------------------------------------------------------------- */

static void server_spawn(void);
static int pick_port(void);

static void server_ready(chaos_proc *p, int port, void *ud);
static void server_exited(chaos_proc *p, int64_t status, int sig, void *ud);

static void server_spawn(void) {
  char tcp[64], unix_ep[160];
  snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", T.port);
  snprintf(unix_ep, sizeof unix_ep, "unix:%s", T.unix_path);
  char *argv[] = {CHAOS_SERVER_PATH, "--tcp", tcp, "--unix", unix_ep, "--ledger", T.ledger_path,
                  "--grace", SERVER_GRACE_MS, "--max-calls", SERVER_MAX_CALLS, NULL};
  static const chaos_proc_cbs cbs = {server_ready, server_exited};
  T.srv = SRV_STARTING;
  int rc = chaos_proc_spawn(&T.server, &T.loop, argv, &cbs, NULL);
  if (rc != 0) {
    fprintf(stderr, "chaos_test: cannot spawn %s: %s\n", CHAOS_SERVER_PATH, uv_strerror(rc));
    abort();
  }
  T.incarnations++;
}

static void start_workload(void);

static void server_ready(chaos_proc *p, int port, void *ud) {
  (void)p;
  (void)ud;
  if (port != T.port) failure("server announced port %d, expected %d", port, T.port);
  T.srv = SRV_UP;
  T.start_failures = 0;
  if (!T.ch[0]) start_workload();
}

static void teardown(void);

static void server_exited(chaos_proc *p, int64_t status, int sig, void *ud) {
  (void)p;
  (void)ud;
  uint64_t now = uv_now(&T.loop);
  T.server = NULL;
  switch (T.srv) {
  case SRV_KILLED:
    if (sig != SIGKILL) failure("killed server ended with status %" PRId64 " signal %d", status, sig);
    T.restart_at = now + 50 + mix(now) % 250;
    break;
  case SRV_DRAINING:
  case SRV_FINAL:
    if (status != 0 || sig != 0)
      failure("server drain ended with status %" PRId64 " signal %d (want a clean exit 0)", status, sig);
    T.restart_at = now + mix(now) % 100;
    break;
  case SRV_STARTING:
    /* Listen failed (exit 4: the port is taken): pick another port before the workload starts,
     * retry the same one (briefly) after. */
    if (status != 4 || ++T.start_failures > 50) {
      fprintf(stderr, "chaos_test: server failed to start (status %" PRId64 " signal %d)\n", status, sig);
      abort();
    }
    if (!T.ch[0]) T.port = pick_port();
    T.restart_at = now + 100;
    break;
  default:
    failure("server died on its own: status %" PRId64 " signal %d", status, sig);
    T.restart_at = now;
    break;
  }
  if (T.srv == SRV_FINAL) {
    T.srv = SRV_GONE;
    teardown();
  } else {
    T.srv = SRV_DOWN;
  }
}

/* ---- Chaos schedule and the end of the run ----------------------------------------------------- */

static int event_is_kill(int i) { /* kills and drains interleaved evenly */
  int k = T.cfg.kills, n = T.n_events;
  return (i + 1) * k / n != i * k / n;
}

static void chaos_event(uint64_t now) {
  if (event_is_kill(T.events_done)) {
    T.srv = SRV_KILLED;
    T.kills_done++;
    chaos_proc_signal(T.server, SIGKILL);
  } else {
    T.srv = SRV_DRAINING;
    T.drains_done++;
    chaos_proc_signal(T.server, SIGTERM);
  }
  T.events_done++;
  (void)now;
}

static void dump_stuck(void) {
  fprintf(stderr, "chaos_test: no call completed for %d s; %u async in flight, blocking %u/%u, "
          "server state %d\n", STALL_LIMIT_MS / 1000, T.n_inflight, atomic_load(&T.blocking_done),
          T.n_blocking * N_THREADS, (int)T.srv);
  for (uint32_t i = 0; i < T.n_inflight && i < 20; i++) {
    uint32_t id = T.inflight[i];
    plan p = plan_for(id);
    fprintf(stderr, "  call %u: channel %s, delay %u ms, timeout %" PRId64 " ms, cancel %d, ran %u\n",
            id, T.targets[T.recs[id].chan], p.delay_ms, p.timeout_ms, p.cancel,
            chaos_ledger_runs(&T.ledger, id));
  }
}

static int all_calls_done(void) {
  return T.next_async == T.n_async && T.done_async == T.n_async &&
         atomic_load(&T.sched_done) == N_THREADS;
}

static void probe_done(const crpc_status *st, const Chaos__Rep *rep, void *ud) {
  rec *r = ud;
  uint32_t id = (uint32_t)(r - T.recs);
  int first = r->completions == 0;
  record_completion(id, st, rep);
  if (!first) return;
  T.chan_probe_busy[r->chan] = 0;
  if (st->code == CRPC_STATUS_OK) T.chan_recovered[r->chan] = 1;
}

/* After the chaos: every channel, async and blocking, must answer OK again within
 * RECOVERY_LIMIT_MS. Returns 1 once all have (or the limit passed, reported as failures). */
static int recovered(uint64_t now) {
  if (!atomic_load(&T.probing)) {
    T.probe_start = now;
    atomic_store(&T.probing, 1);
  }
  int all = atomic_load(&T.threads_done) == N_THREADS;
  for (int c = 0; c < N_CHANNELS; c++) {
    if (T.chan_recovered[c]) continue;
    all = 0;
    if (T.chan_probe_busy[c] || now - T.probe_start >= RECOVERY_LIMIT_MS) continue;
    uint32_t id = atomic_fetch_add(&T.next_probe, 1);
    if (id >= g_probe_base + N_PROBE_IDS) continue;
    uint8_t buf[CHAOS_PAYLOAD_MAX];
    Chaos__Req req = CHAOS__REQ__INIT;
    req.id = id;
    req.payload.data = buf;
    req.payload.len = chaos_payload_fill(id, buf);
    T.recs[id].chan = (uint8_t)c;
    if (chaos__ledger__run__start(T.ch[c], &req, NULL, probe_done, &T.recs[id], NULL) == 0)
      T.chan_probe_busy[c] = 1;
    else
      T.recs[id].flags |= F_STARTERR;
  }
  if (all || now - T.probe_start < RECOVERY_LIMIT_MS + 5000) return all;
  for (int c = 0; c < N_CHANNELS; c++)
    if (!T.chan_recovered[c])
      failure("channel %d (%s, loop) did not answer OK within %d s after the chaos ended", c,
              T.targets[c], RECOVERY_LIMIT_MS / 1000);
  return atomic_load(&T.threads_done) == N_THREADS;
}

static void control(uv_timer_t *t) {
  (void)t;
  uint64_t now = uv_now(&T.loop), el = now - T.t0;
  uint32_t progress = T.done_async + atomic_load(&T.blocking_done);
  if (progress != T.last_progress_count || T.srv == SRV_STARTING || atomic_load(&T.probing)) {
    T.last_progress_count = progress;
    T.last_progress_at = now;
  } else if (now - T.last_progress_at > STALL_LIMIT_MS && !all_calls_done()) {
    dump_stuck();
    abort();
  }
  if (T.srv == SRV_DOWN && now >= T.restart_at) server_spawn();
  if (T.srv == SRV_UP && T.events_done < T.n_events &&
      el >= T.cfg.span_ms * (uint64_t)(T.events_done + 1) / (uint64_t)(T.n_events + 1))
    chaos_event(now);
  if (el < T.cfg.span_ms && now >= T.next_reset_at) {
    T.resets++;
    T.pairs_reset += (unsigned)chaos_proxy_reset_all(T.proxy);
    T.next_reset_at = now + 300 + mix(now) % 600;
  }
  if (T.srv == SRV_UP && T.events_done == T.n_events && all_calls_done() && recovered(now)) {
    for (int i = 0; i < N_THREADS; i++) pthread_join(T.threads[i], NULL);
    T.threads_started = 0;
    T.srv = SRV_FINAL;
    chaos_proc_signal(T.server, SIGTERM);
  }
}

static void channel_closed(void *ud) {
  (void)ud;
  T.closing_channels--;
}

static void proxy_closed(void *ud) {
  (void)ud;
  T.proxy = NULL;
}

static void teardown(void) {
  uv_close((uv_handle_t *)&T.pump, NULL);
  uv_close((uv_handle_t *)&T.ctl, NULL);
  for (int i = 0; i < N_CHANNELS; i++) {
    T.closing_channels++;
    crpc_channel_close(T.ch[i], channel_closed, NULL);
  }
  T.relayed = chaos_proxy_accepted(T.proxy);
  chaos_proxy_close(T.proxy, proxy_closed, NULL);
}

static void start_workload(void) {
  int rc = chaos_proxy_start(&T.proxy, &T.loop, T.port, &T.proxy_port);
  if (rc != 0) {
    fprintf(stderr, "chaos_test: proxy: %s\n", uv_strerror(rc));
    abort();
  }
  char tcp[64], relay[64], unix_ep[160];
  snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", T.port);
  snprintf(relay, sizeof relay, "tcp://127.0.0.1:%d", T.proxy_port);
  snprintf(unix_ep, sizeof unix_ep, "unix:%s", T.unix_path);
  const char *chan_targets[N_CHANNELS] = {tcp, unix_ep, relay, relay};
  for (int i = 0; i < N_CHANNELS; i++) {
    snprintf(T.targets[i], sizeof T.targets[i], "%s", chan_targets[i]);
    if ((rc = crpc_channel_new(&T.ch[i], &T.loop, T.targets[i])) != 0 ||
        (rc = channel_options(T.ch[i])) != 0) {
      fprintf(stderr, "chaos_test: channel %s: %s\n", T.targets[i], crpc_strerror(rc));
      abort();
    }
  }
  snprintf(T.thread_target[0], sizeof T.thread_target[0], "%s", tcp);
  snprintf(T.thread_target[1], sizeof T.thread_target[1], "%s", relay);
  T.t0 = uv_now(&T.loop);
  T.t0_mono_ns = mono_ns();
  T.last_progress_at = T.t0;
  T.next_reset_at = T.t0 + 500;
  for (int i = 0; i < N_THREADS; i++) {
    if (crpc_cancel_token_new(&T.tokens[i]) != 0 ||
        pthread_create(&T.threads[i], NULL, blocking_main, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "chaos_test: cannot start blocking thread\n");
      abort();
    }
  }
  T.threads_started = 1;
  uv_timer_start(&T.pump, pump, 0, 2);
}

/* ---- Verification ------------------------------------------------------------------------------ */

static void verify_and_report(void) {
  uint32_t n = T.n_async + N_THREADS * T.n_blocking, probes = atomic_load(&T.next_probe) - n;
  if (probes > N_PROBE_IDS) probes = N_PROBE_IDS;
  for (int t = 0; t < N_THREADS; t++)
    if (!T.thread_recovered[t])
      failure("blocking thread %d (%s, private loop) did not answer OK within %d s after the chaos ended",
              t, T.thread_target[t], RECOVERY_LIMIT_MS / 1000);
  unsigned count[3][CRPC_CODE_COUNT] = {{0}}, refused = 0, ran = 0, ok_ran = 0, cancel_asked = 0;
  unsigned twice = 0, refused_ran = 0;
  for (uint32_t id = 0; id < n + probes; id++) {
    const rec *r = &T.recs[id];
    int kind = id >= n ? 2 : id >= T.n_async;
    unsigned runs = chaos_ledger_runs(&T.ledger, id);
    const char *msg = r->msg < T.n_msgs ? T.msgs[r->msg].text : "?";
    ran += runs;
    if (r->flags & F_CANCEL) cancel_asked++;
    if (r->completions != 1) {
      failure("call %u completed %u times", id, r->completions);
      continue;
    }
    if (r->code < CRPC_CODE_COUNT) count[kind][r->code]++;
    if (!allowed_code(r->code)) failure("call %u ended %s (%s)", id, crpc_code_name(r->code), msg);
    if (r->flags & F_STARTERR) failure("call %u could not be started", id);
    if (r->code == CRPC_STATUS_OK && (r->flags & F_BADRESP)) failure("call %u: OK with a wrong response", id);
    if (r->code != CRPC_STATUS_OK && (r->flags & F_BADRESP)) failure("call %u: %s with a response", id, crpc_code_name(r->code));
    if (runs > 1) twice++;
    if (runs > 1) failure("call %u ran %u times on the server (client saw %s: %s)", id, runs, crpc_code_name(r->code), msg);
    if (r->code == CRPC_STATUS_OK && runs != 1) failure("call %u: OK but ran %u times on the server", id, runs);
    if (r->code == CRPC_STATUS_OK) ok_ran++;
    if (r->flags & F_REFUSED) {
      refused++;
      if (runs != 0) refused_ran++;
      if (runs != 0) failure("call %u refused as not processed (%s), but ran on the server", id, msg);
    }
    if (r->code == CRPC_STATUS_RESOURCE_EXHAUSTED && runs != 0)
      failure("call %u refused RESOURCE_EXHAUSTED (%s), but ran on the server", id, msg);
  }
  unsigned total = atomic_load(&T.ledger.hdr->runs_total), oor = atomic_load(&T.ledger.hdr->out_of_range);
  if (oor != 0) failure("the server ran %u calls with ids outside the run", oor);
  if (total != ran) failure("ledger total %u differs from the per-call counts %u (a call ran more than 255 times?)", total, ran);

  printf("chaos: %u calls (%u async on %d channels, %u blocking on %d threads) + %u recovery probes,"
         " seed %" PRIu64 "\n", n, T.n_async, N_CHANNELS, T.n_blocking * N_THREADS, N_THREADS, probes,
         T.cfg.seed);
  printf("chaos: server started %d times; %d kills, %d drains (+1 final); %u relay resets (%u connections"
         " reset, %zu relayed); %u token cancels; %u cancels from callbacks; max %u async in flight\n",
         T.incarnations, T.kills_done, T.drains_done, T.resets, T.pairs_reset,
         T.relayed, T.token_cancels, T.nested_cancels, T.max_inflight);
  printf("chaos: %-20s %8s %8s %8s %8s\n", "status", "async", "blocking", "probes", "total");
  for (int c = 0; c < CRPC_CODE_COUNT; c++)
    if (count[0][c] + count[1][c] + count[2][c])
      printf("chaos: %-20s %8u %8u %8u %8u\n", crpc_code_name((crpc_code)c), count[0][c], count[1][c],
             count[2][c], count[0][c] + count[1][c] + count[2][c]);
  printf("chaos: server ran %u calls, %u of them more than once; %u OK, each ran once; %u refused by "
         "GOAWAY as not processed, %u of them ran; %u cancels requested\n", ran, twice, ok_ran, refused,
         refused_ran, cancel_asked);
  printf("chaos: status texts seen:\n");
  for (int i = 0; i < T.n_msgs; i++)
    printf("chaos:   %7u  %-18s %s\n", T.msgs[i].count, crpc_code_name((crpc_code)T.msgs[i].code), T.msgs[i].text);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, config *c) {
  *c = (config){.calls = 5000, .kills = 3, .drains = 2, .span_ms = 8000, .seed = 0};
  c->seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--long") == 0) {
      c->calls = 100000, c->kills = 20, c->drains = 10, c->span_ms = 120000;
      continue;
    }
    if (!v) return -1;
    i++;
    if (strcmp(a, "--calls") == 0) c->calls = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--kills") == 0) c->kills = atoi(v);
    else if (strcmp(a, "--drains") == 0) c->drains = atoi(v);
    else if (strcmp(a, "--seconds") == 0) c->span_ms = strtoull(v, NULL, 10) * 1000u;
    else if (strcmp(a, "--seed") == 0) c->seed = strtoull(v, NULL, 10);
    else return -1;
  }
  if (c->calls < 100 || c->kills < 0 || c->drains < 0 || c->span_ms < 1000) return -1;
  return 0;
}

/* A port below the ephemeral range, so that no outgoing connection (the channels', the relay's)
 * can take it while the server is down and the server can always come back on it. */
static int pick_port(void) {
  int lo = 32768, hi = 60999;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (f) {
    if (fscanf(f, "%d %d", &lo, &hi) != 2) lo = 32768;
    fclose(f);
  }
  int base = lo > 12000 + 1024 ? lo - 12000 : 1024;
  return base + (int)(mix((uint64_t)getpid() ^ mono_ns()) % (uint64_t)(lo - base > 0 ? lo - base : 1));
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv, &T.cfg) != 0) {
    fprintf(stderr, "usage: chaos_test [--calls N] [--kills N] [--drains N] [--seconds S] [--seed N] [--long]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_seed = T.cfg.seed;
  pthread_mutex_init(&T.mu, NULL);
  uint32_t n = T.cfg.calls;
  T.n_blocking = n / 20;
  T.n_async = n - N_THREADS * T.n_blocking;
  T.n_bursts = T.n_async / 3 / 1000 > 5 ? (int)(T.n_async / 3 / 1000) : 5; /* bursts of <= 1000 */
  T.burst_size = T.n_async / 3 / (uint32_t)T.n_bursts;
  T.n_steady = T.n_async - T.burst_size * (uint32_t)T.n_bursts;
  T.n_events = T.cfg.kills + T.cfg.drains;
  g_probe_base = n;
  atomic_store(&T.next_probe, n);
  T.recs = calloc(n + N_PROBE_IDS, sizeof *T.recs);
  T.inflight = calloc(T.n_async, sizeof *T.inflight);
  snprintf(T.dir, sizeof T.dir, "/tmp/crpc-chaos-XXXXXX");
  if (!T.recs || !T.inflight || !mkdtemp(T.dir)) {
    perror("chaos_test: setup");
    return 1;
  }
  snprintf(T.ledger_path, sizeof T.ledger_path, "%s/ledger", T.dir);
  snprintf(T.unix_path, sizeof T.unix_path, "%s/server.sock", T.dir);
  int rc = chaos_ledger_create(&T.ledger, T.ledger_path, n + N_PROBE_IDS);
  if (rc != 0) {
    fprintf(stderr, "chaos_test: ledger: %s\n", strerror(-rc));
    return 1;
  }
  uv_loop_init(&T.loop);
  uv_timer_init(&T.loop, &T.pump);
  uv_timer_init(&T.loop, &T.ctl);
  uv_timer_start(&T.ctl, control, 10, 10);
  T.port = pick_port();
  server_spawn();
  uv_run(&T.loop, UV_RUN_DEFAULT);
  if (T.closing_channels != 0 || T.proxy) failure("close callbacks did not all run");
  if (uv_loop_close(&T.loop) != 0) failure("uv_loop_close: handles left on the test's loop");
  for (int i = 0; i < N_THREADS; i++) crpc_cancel_token_free(T.tokens[i]);
  verify_and_report();
  chaos_ledger_close(&T.ledger);
  unlink(T.ledger_path);
  unlink(T.unix_path);
  rmdir(T.dir);
  free(T.recs);
  free(T.inflight);
  pthread_mutex_destroy(&T.mu);
  printf("chaos: %s (%d failures)\n", T.failures ? "FAILED" : "passed", T.failures);
  return T.failures ? 1 : 0;
}
