/* Soak driver: mixed unary load against a chaos_server process for a number of minutes, with the
 * server's memory and descriptors sampled once a minute.
 *
 *   soak_driver --server PATH [--minutes N]
 *
 * Load (loopback only, bounded): 4 loop channels (2 TCP, 2 unix socket) with up to 64 async
 * calls in flight each and at most RATE_LIMIT calls a second in all; 2 threads making blocking
 * calls on private-loop channels. Per call: 70% answered at once, 20% after 1-20 ms, 10% after
 * 20-200 ms; 10% with a 5-100 ms deadline; 5% cancelled (async: crpc_call_cancel; blocking: a
 * cancel token). Every 2 s one loop channel is closed (its calls complete CANCELLED) and replaced;
 * each blocking thread closes and reopens its channel every 200 calls.
 *
 * Each minute prints: server VmRSS (/proc/PID/status), server open descriptors (/proc/PID/fd),
 * calls completed that minute and in all, OK calls, and the p50/p99 latency of the minute's OK
 * calls answered at once (the others wait on purpose). At the end it says whether RSS and
 * descriptors stayed flat after the warm-up (the first third of the run, at least 2 minutes:
 * RSS <= +10% + 256 kB, fds <= +5) and exits 0 if so, 1 if not,
 * 2 if any call completed with a wrong response or an unexpected status. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <crpc/crpc.h>

#include "chaos.crpc.h"
#include "payload.h"
#include "proc.h"

#define N_CHANNELS 4
#define N_THREADS 2
#define WINDOW 64
#define RATE_LIMIT 4000   /* calls per second, all async channels together */
#define CHANNEL_CYCLE_MS 2000
#define BLOCKING_REOPEN 200
#define N_BUCKETS 512     /* latency histogram: bucket b holds [1.05^b, 1.05^(b+1)) µs */
#define MAX_MINUTES 1440

typedef struct histogram {
  atomic_uint b[N_BUCKETS];
} histogram;

typedef struct async_call {
  crpc_call *call;
  uint64_t start_ns;
  uint64_t id;
  int chan, immediate, cancel_at_ms;
  struct async_call *prev, *next;
} async_call;

static struct {
  uv_loop_t loop;
  uv_timer_t tick, cycle, minute;
  chaos_proc *server;
  pid_t server_pid;
  int port, minutes, minute_no, stopping, server_gone, exit_status;
  char unix_path[128], dir[64];
  crpc_channel *ch[N_CHANNELS];
  char target[N_CHANNELS][160];
  int inflight[N_CHANNELS], cycle_next, closing;
  async_call calls; /* in-flight list head */
  uint64_t next_id;
  uint64_t tokens_at_ms;
  double tokens;
  pthread_t threads[N_THREADS];
  crpc_cancel_token *tok[N_THREADS];
  atomic_int stop_threads;
  atomic_ullong done, ok, bad, by_code[CRPC_CODE_COUNT];
  histogram hist;
  unsigned long long done_at_last_minute;
  long rss_kb[MAX_MINUTES + 1];
  int fds[MAX_MINUTES + 1];
} S;

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Per-call plan, request, outcome --------------------------------------------------------- */

typedef struct plan {
  uint32_t delay_ms;
  int64_t timeout_ms;
  int cancel_after_ms; /* -1: none */
} plan;

static plan plan_for(uint64_t id) {
  uint64_t r = mix(id);
  plan p = {0, 0, -1};
  unsigned d = (unsigned)(r % 100);
  r /= 100;
  p.delay_ms = d < 70 ? 0 : d < 90 ? 1 + (uint32_t)(r % 20) : 20 + (uint32_t)(r % 181);
  r /= 1000;
  if (r % 100 < 10) p.timeout_ms = 5 + (int64_t)((r / 100) % 96);
  r /= 100000;
  if (r % 100 < 5) p.cancel_after_ms = (int)((r / 100) % 51);
  return p;
}

static void hist_add(uint64_t ns) {
  double us = (double)ns / 1000.0;
  int b = us <= 1.0 ? 0 : (int)(log(us) / log(1.05));
  if (b >= N_BUCKETS) b = N_BUCKETS - 1;
  atomic_fetch_add(&S.hist.b[b], 1);
}

/* The q-quantile of the minute's histogram in ms, and resets it. */
static void hist_take(double *p50, double *p99, unsigned long long *n_out) {
  unsigned counts[N_BUCKETS];
  unsigned long long n = 0;
  for (int b = 0; b < N_BUCKETS; b++) n += counts[b] = atomic_exchange(&S.hist.b[b], 0);
  *p50 = *p99 = 0;
  *n_out = n;
  unsigned long long acc = 0;
  for (int b = 0; b < N_BUCKETS && n; b++) {
    acc += counts[b];
    double ms = pow(1.05, b + 1) / 1000.0;
    if (*p50 == 0 && acc * 100 >= n * 50) *p50 = ms;
    if (acc * 100 >= n * 99) {
      *p99 = ms;
      break;
    }
  }
}

static void outcome(uint64_t id, const crpc_status *st, const Chaos__Rep *rep, uint64_t start_ns,
                    int immediate) {
  atomic_fetch_add(&S.done, 1);
  if (st->code < CRPC_CODE_COUNT) atomic_fetch_add(&S.by_code[st->code], 1);
  int expected = st->code == CRPC_STATUS_OK || st->code == CRPC_STATUS_CANCELLED ||
                 st->code == CRPC_STATUS_DEADLINE_EXCEEDED || st->code == CRPC_STATUS_UNAVAILABLE;
  if (!expected || (st->code == CRPC_STATUS_OK &&
                    (!rep || rep->id != id || !chaos_payload_check(id, rep->payload.data, rep->payload.len)))) {
    if (atomic_fetch_add(&S.bad, 1) < 10)
      fprintf(stderr, "soak: call %" PRIu64 ": %s (%s)%s\n", id, crpc_code_name(st->code),
              st->message ? st->message : "", st->code == CRPC_STATUS_OK ? ", wrong response" : "");
    return;
  }
  if (st->code != CRPC_STATUS_OK) return;
  atomic_fetch_add(&S.ok, 1);
  if (immediate) hist_add(mono_ns() - start_ns);
}

static size_t fill_req(Chaos__Req *req, uint64_t id, const plan *p, uint8_t *buf) {
  *req = (Chaos__Req)CHAOS__REQ__INIT;
  req->id = id;
  req->delay_ms = p->delay_ms;
  req->payload.data = buf;
  return req->payload.len = chaos_payload_fill(id, buf);
}

static int channel_options(crpc_channel *ch) {
  int rc = crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_INITIAL_MS, 10);
  return rc ? rc : crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 200);
}

/* ---- Async load (loop thread) ------------------------------------------------------------------ */

static void list_remove(async_call *c) {
  c->prev->next = c->next;
  c->next->prev = c->prev;
}

static void async_done(const crpc_status *st, const Chaos__Rep *rep, void *ud) {
  async_call *c = ud;
  outcome(c->id, st, rep, c->start_ns, c->immediate);
  S.inflight[c->chan]--;
  list_remove(c);
  free(c);
}

static void start_one(int chan) {
  async_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->id = S.next_id++;
  c->chan = chan;
  plan p = plan_for(c->id);
  c->immediate = p.delay_ms == 0 && p.cancel_after_ms < 0;
  c->cancel_at_ms = p.cancel_after_ms < 0 ? -1 : (int)(uv_now(&S.loop) % 1000000000) + p.cancel_after_ms;
  uint8_t buf[CHAOS_PAYLOAD_MAX];
  Chaos__Req req;
  fill_req(&req, c->id, &p, buf);
  crpc_call_opts o = {.timeout_ms = p.timeout_ms};
  c->start_ns = mono_ns();
  c->next = S.calls.next;
  c->prev = &S.calls;
  c->next->prev = c;
  S.calls.next = c;
  S.inflight[chan]++;
  if (chaos__ledger__run__start(S.ch[chan], &req, &o, async_done, c, &c->call) != 0) {
    S.inflight[chan]--;
    list_remove(c);
    free(c);
    atomic_fetch_add(&S.bad, 1);
  }
}

static void tick(uv_timer_t *t) {
  (void)t;
  uint64_t now = uv_now(&S.loop);
  S.tokens += (double)(now - S.tokens_at_ms) * RATE_LIMIT / 1000.0;
  if (S.tokens > RATE_LIMIT / 10.0) S.tokens = RATE_LIMIT / 10.0;
  S.tokens_at_ms = now;
  int started = 1;
  while (!S.stopping && S.tokens >= 1 && started) {
    started = 0;
    for (int c = 0; c < N_CHANNELS && S.tokens >= 1; c++)
      if (S.ch[c] && S.inflight[c] < WINDOW) {
        start_one(c);
        S.tokens -= 1;
        started = 1;
      }
  }
  int now_ms = (int)(now % 1000000000);
  for (async_call *c = S.calls.next, *next; c != &S.calls; c = next) {
    next = c->next; /* cancelling completes (and frees) c now */
    if (c->cancel_at_ms >= 0 && c->cancel_at_ms <= now_ms) {
      c->cancel_at_ms = -1;
      crpc_call_cancel(c->call);
    }
  }
}

static void channel_closed(void *ud) {
  (void)ud;
  S.closing--;
}

static crpc_channel *channel_open(int i) {
  crpc_channel *ch;
  if (crpc_channel_new(&ch, &S.loop, S.target[i]) != 0 || channel_options(ch) != 0) abort();
  return ch;
}

/* A client-side connection kill: close one channel (its calls complete CANCELLED), open anew. */
static void cycle(uv_timer_t *t) {
  (void)t;
  int i = S.cycle_next++ % N_CHANNELS;
  S.closing++;
  crpc_channel_close(S.ch[i], channel_closed, NULL);
  S.ch[i] = channel_open(i);
}

/* ---- Blocking load (own threads) --------------------------------------------------------------- */

static void *blocking_main(void *arg) {
  int t = (int)(intptr_t)arg;
  crpc_channel *ch = NULL;
  for (uint64_t i = 0; !atomic_load(&S.stop_threads); i++) {
    if (i % BLOCKING_REOPEN == 0) {
      if (ch) crpc_channel_close(ch, NULL, NULL);
      if (crpc_channel_new(&ch, NULL, S.target[t]) != 0 || channel_options(ch) != 0) abort();
    }
    uint64_t id = ((uint64_t)(t + 1) << 48) | i;
    plan p = plan_for(id);
    uint8_t buf[CHAOS_PAYLOAD_MAX];
    Chaos__Req req;
    fill_req(&req, id, &p, buf);
    crpc_cancel_token_reset(S.tok[t]);
    if (p.cancel_after_ms >= 0) crpc_cancel_token_cancel(S.tok[t]);
    crpc_call_opts o = {.timeout_ms = p.timeout_ms, .cancel = S.tok[t]};
    Chaos__Rep *rep = NULL;
    crpc_status st = {0};
    uint64_t start = mono_ns();
    if (chaos__ledger__run__call(ch, &req, &rep, &st, &o) != 0) atomic_fetch_add(&S.bad, 1);
    outcome(id, &st, rep, start, p.delay_ms == 0 && p.cancel_after_ms < 0);
    if (rep) chaos__rep__free_unpacked(rep, NULL);
    crpc_status_reset(&st);
  }
  crpc_channel_close(ch, NULL, NULL);
  return NULL;
}

/* ---- Sampling ----------------------------------------------------------------------------------- */

static long server_rss_kb(void) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)S.server_pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static int server_fds(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)S.server_pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static void finish(void);

static void minute(uv_timer_t *t) {
  (void)t;
  int m = ++S.minute_no;
  double p50, p99;
  unsigned long long n_lat, done = atomic_load(&S.done);
  hist_take(&p50, &p99, &n_lat);
  S.rss_kb[m] = server_rss_kb();
  S.fds[m] = server_fds();
  printf("soak: minute %3d  server RSS %7ld kB  fds %3d  calls %8llu (total %10llu, OK %10llu)  "
         "p50 %6.2f ms  p99 %6.2f ms\n", m, S.rss_kb[m], S.fds[m], done - S.done_at_last_minute, done,
         (unsigned long long)atomic_load(&S.ok), p50, p99);
  S.done_at_last_minute = done;
  if (m >= S.minutes) finish();
}

/* ---- Start and end -------------------------------------------------------------------------------- */

static void server_exited(chaos_proc *p, int64_t status, int sig, void *ud) {
  (void)p;
  (void)ud;
  S.server = NULL;
  S.server_gone = 1;
  if (!S.stopping) {
    fprintf(stderr, "soak: the server died (status %" PRId64 " signal %d)\n", status, sig);
    exit(3);
  }
  if (status != 0 || sig != 0) {
    fprintf(stderr, "soak: server drain ended with status %" PRId64 " signal %d\n", status, sig);
    S.exit_status = 2;
  }
}

static void server_ready(chaos_proc *p, int port, void *ud) {
  (void)ud;
  S.port = port;
  S.server_pid = chaos_proc_pid(p);
  snprintf(S.target[0], sizeof S.target[0], "tcp://127.0.0.1:%d", port);
  snprintf(S.target[1], sizeof S.target[1], "unix:%s", S.unix_path);
  snprintf(S.target[2], sizeof S.target[2], "tcp://127.0.0.1:%d", port);
  snprintf(S.target[3], sizeof S.target[3], "unix:%s", S.unix_path);
  for (int i = 0; i < N_CHANNELS; i++) S.ch[i] = channel_open(i);
  for (int i = 0; i < N_THREADS; i++)
    if (crpc_cancel_token_new(&S.tok[i]) != 0 ||
        pthread_create(&S.threads[i], NULL, blocking_main, (void *)(intptr_t)i) != 0)
      abort();
  S.tokens_at_ms = uv_now(&S.loop);
  uv_timer_start(&S.tick, tick, 1, 1);
  uv_timer_start(&S.cycle, cycle, CHANNEL_CYCLE_MS, CHANNEL_CYCLE_MS);
  uv_timer_start(&S.minute, minute, 60000, 60000);
  printf("soak: server pid %d on tcp://127.0.0.1:%d and unix:%s; %d minutes\n", (int)S.server_pid,
         port, S.unix_path, S.minutes);
}

static void finish(void) {
  S.stopping = 1;
  uv_timer_stop(&S.minute);
  uv_timer_stop(&S.cycle);
  atomic_store(&S.stop_threads, 1);
  for (int i = 0; i < N_THREADS; i++) pthread_join(S.threads[i], NULL);
  for (int i = 0; i < N_CHANNELS; i++) {
    S.closing++;
    crpc_channel_close(S.ch[i], channel_closed, NULL); /* in-flight calls complete CANCELLED */
    S.ch[i] = NULL;
  }
  uv_close((uv_handle_t *)&S.tick, NULL);
  uv_close((uv_handle_t *)&S.cycle, NULL);
  uv_close((uv_handle_t *)&S.minute, NULL);
  chaos_proc_signal(S.server, SIGTERM);
}

/* Warm-up is the first third of the run (at least two minutes): the allocator grows to its
 * working size there in steps of a few hundred kB. After it, RSS must stay within +10% (and a
 * 256 kB step) and descriptors within +5 of their values at the end of the warm-up. */
static void verdict(void) {
  int warm = S.minute_no / 3 < 2 ? 2 : S.minute_no / 3;
  if (warm >= S.minute_no) warm = 1;
  long rss0 = S.rss_kb[warm], rss_max = rss0;
  int fd0 = S.fds[warm], fd_max = fd0;
  for (int m = warm + 1; m <= S.minute_no; m++) {
    if (S.rss_kb[m] > rss_max) rss_max = S.rss_kb[m];
    if (S.fds[m] > fd_max) fd_max = S.fds[m];
  }
  int rss_flat = rss_max <= rss0 + rss0 / 10 + 256, fds_flat = fd_max <= fd0 + 5;
  printf("soak: calls by status:");
  for (int c = 0; c < CRPC_CODE_COUNT; c++)
    if (atomic_load(&S.by_code[c])) printf(" %s %llu", crpc_code_name((crpc_code)c), (unsigned long long)atomic_load(&S.by_code[c]));
  printf("; unexpected %llu\n", (unsigned long long)atomic_load(&S.bad));
  if (S.minute_no < 2) {
    printf("soak: too short to judge flatness (needs 2 minutes or more)\n");
    return;
  }
  printf("soak: server RSS after the warm-up (minute %d): %ld kB, highest later %ld kB (%+.1f%%): %s\n", warm, rss0, rss_max,
         100.0 * (double)(rss_max - rss0) / (double)rss0, rss_flat ? "flat" : "GROWING");
  printf("soak: server fds after the warm-up: %d, highest later %d (%+d): %s\n", fd0, fd_max, fd_max - fd0,
         fds_flat ? "flat" : "GROWING");
  printf("soak: %s\n", rss_flat && fds_flat ? "RSS and descriptors stayed flat" : "NOT flat");
  if (!(rss_flat && fds_flat) && S.exit_status == 0) S.exit_status = 1;
}

int main(int argc, char **argv) {
  const char *server = NULL;
  S.minutes = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--server") == 0) server = argv[i + 1];
    else if (strcmp(argv[i], "--minutes") == 0) S.minutes = atoi(argv[i + 1]);
  }
  if (!server || S.minutes < 1 || S.minutes > MAX_MINUTES) {
    fprintf(stderr, "usage: soak_driver --server PATH [--minutes N (1..%d)]\n", MAX_MINUTES);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(S.dir, sizeof S.dir, "/tmp/crpc-soak-XXXXXX");
  if (!mkdtemp(S.dir)) return 1;
  snprintf(S.unix_path, sizeof S.unix_path, "%s/server.sock", S.dir);
  S.calls.next = S.calls.prev = &S.calls;
  uv_loop_init(&S.loop);
  uv_timer_init(&S.loop, &S.tick);
  uv_timer_init(&S.loop, &S.cycle);
  uv_timer_init(&S.loop, &S.minute);
  char unix_ep[160];
  snprintf(unix_ep, sizeof unix_ep, "unix:%s", S.unix_path);
  char *args[] = {(char *)server, "--tcp", "tcp://127.0.0.1:0", "--unix", unix_ep, NULL};
  static const chaos_proc_cbs cbs = {server_ready, server_exited};
  if (chaos_proc_spawn(&S.server, &S.loop, args, &cbs, NULL) != 0) {
    fprintf(stderr, "soak: cannot start %s\n", server);
    return 1;
  }
  uv_run(&S.loop, UV_RUN_DEFAULT);
  if (S.closing != 0 || uv_loop_close(&S.loop) != 0) {
    fprintf(stderr, "soak: the driver's loop did not close cleanly\n");
    S.exit_status = 2;
  }
  for (int i = 0; i < N_THREADS; i++) crpc_cancel_token_free(S.tok[i]);
  verdict();
  unlink(S.unix_path);
  rmdir(S.dir);
  return S.exit_status ? S.exit_status : (atomic_load(&S.bad) ? 2 : 0);
}
