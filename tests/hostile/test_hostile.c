/* Slow and hostile peers against one loop server, all at the same time, while a legitimate
 * channel keeps calling: under slowloris, a client that never reads responses and a ping flood,
 * the legitimate client's calls keep succeeding and the server's memory stays within its
 * documented bound.
 *
 *  - N_SLOW slowloris connections send the preface, then a CALL frame one byte every SLOW_BYTE_MS.
 *    The server (STALL_TIMEOUT_MS = STALL_MS) must close every one (EOF seen) between STALL_MS
 *    and STALL_MS + SLOW_EOF_SLACK_MS after its frame began, with GOAWAY PROTOCOL_ERROR, and
 *    serve none of them (no handler run, no STATUS). The CI scale keeps the proportion of "a byte
 *    every few seconds against a 20 s stall timeout".
 *  - A hog sends HOG_CALLS calls that each ask for a HOG_REPLY-byte response and never reads. The
 *    server (MAX_WRITE_BUFFER = MAX_WRITE) must pause reading it: its handler runs stop far below
 *    HOG_CALLS and stay stopped, and what it queues for the hog stays within MAX_WRITE_BUFFER plus
 *    one message. Having read none of it for STALL_TIMEOUT_MS, the hog is then disconnected, so
 *    it holds that memory only for a bounded time.
 *  - A ping flooder sends PINGs in bursts: GOAWAY ENHANCE_YOUR_CALM, then EOF.
 *  - A legitimate loop channel starts an Echo every LEGIT_EVERY_MS, LEGIT_CALLS in all: every one
 *    answers right, each in under LEGIT_MAX_MS.
 *
 * Memory: the process's VmRSS and its live heap (ASan's count under ASan, glibc's otherwise) are
 * sampled all along; their peak growth over a baseline taken after a warm-up must stay under
 * bounds computed from the options. Once the hostile peers are gone the server holds just the
 * legitimate connection. Server internals (srv->nconns, each connection's queued output and
 * read_paused flag) are read through crpc_testing, which exposes runtime/src
 * (server_internal.h, conn.h): the public API has no connection count.
 *
 * Everything runs on one loop on the test's thread: the server, the channel, and the raw sockets
 * (uv_poll for what they receive, timers for what they send). Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "hostile.crpc.h"
#include "peers.h"
#include "server/server.h"

#if defined(__SANITIZE_ADDRESS__)
#define HOSTILE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOSTILE_ASAN 1
#endif
#endif
#if defined(HOSTILE_ASAN)
/* Part of the sanitizer runtime's interface (sanitizer/allocator_interface.h, which not every
 * compiler installs): bytes the program holds now, redzones and quarantine excluded. */
size_t __sanitizer_get_current_allocated_bytes(void);
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

#define METHOD "hostile.Echo/Echo"
#define TICK_MS 5

#define N_SLOW 200
#define STALL_MS 400
#define SLOW_BYTE_MS 150
#define SLOW_EOF_SLACK_MS 2500 /* the sweep runs every STALL_MS/4; the rest is a noisy machine */

#define MAX_WRITE (256 * 1024)
#define MAX_MSG (1024 * 1024)
#define HOG_CALLS 2000
#define HOG_REPLY (64 * 1024)
#define HOG_RCVBUF 4096

#define PING_BURST 8
#define PING_MAX 400
#define PING_START_MS 200 /* after the attack began: while the slowloris frames are stalling */
#define PING_EOF_MAX_MS 2000

#define LEGIT_CALLS 300
#define LEGIT_EVERY_MS 10
#define LEGIT_MAX_MS 2000
#define LEGIT_TIMEOUT_MS 10000

/* Memory bounds. Per connection the server documents MAX_WRITE_BUFFER of queued output plus one
 * message; an idle or stalled connection costs a few small objects (connection, libuv handle,
 * 256-byte output buffer, partial frame), here given PER_CONN_BYTES. Output buffers grow by
 * doubling, so the hog may hold up to twice its queued bytes in capacity. */
#define PER_CONN_BYTES (16 * 1024)
#define N_HOSTILE (N_SLOW + 2)
#define HEAP_SLACK (4u * 1024 * 1024)  /* the channel, calls in flight, the shared read buffer */
#define RSS_SLACK (32u * 1024 * 1024)  /* ASan shadow and quarantine, allocator caching */

typedef struct world world;

typedef struct legit_call {
  world *w;
  int stream;         /* one of the steady stream (counted in w->legit_done) */
  char want[32];      /* the payload sent, to be echoed */
  uint64_t start_ms;
  uint64_t ms;        /* latency */
  int done, ok;
  crpc_code code;
} legit_call;

typedef struct slow_peer {
  world *w;
  int fd;
  int open;           /* handles initialised and not closed */
  uv_poll_t poll;
  uv_timer_t drip;
  size_t sent;        /* bytes of the frame sent */
  uint64_t first_ms;  /* when its first frame byte was sent */
  uint64_t eof_ms;    /* when EOF was seen; 0 not yet */
  hp_inbox in;
} slow_peer;

struct world {
  uv_loop_t loop;
  uv_timer_t driver;
  crpc_server *srv;
  int port;
  char endpoint[64];
  crpc_channel *ch;
  int closes;         /* close callbacks (server, channel) */
  int handles_open;   /* handles of ours whose close callback has not run */
  /* Handler runs per peer; reply failures. */
  int served_legit, served_slow, served_hog, served_other, reply_errors;
  uint8_t *big;       /* HOG_REPLY bytes answered to the hog */
  /* The legitimate stream. */
  legit_call legit[LEGIT_CALLS];
  legit_call single;  /* a call outside the stream */
  int legit_on, legit_started, legit_start_errors, legit_done;
  uint64_t legit_t0;
  /* Slowloris. */
  uint8_t slow_frame[128];
  size_t slow_frame_len;
  slow_peer slow[N_SLOW];
  int slow_eofs;
  /* The hog. */
  int hog_fd;
  uint8_t *hog_out;
  size_t hog_len, hog_off;
  /* The ping flooder. */
  int ping_fd, ping_open, ping_on;
  uv_poll_t ping_poll;
  hp_inbox ping_in;
  uint8_t ping_out[1024];
  size_t ping_out_len;
  int pings_sent;
  uint64_t ping_t0, ping_first_ms, ping_eof_ms;
  /* Memory and server internals, sampled by the driver. */
  long rss0_kb, rss_peak_kb;
  size_t heap0, heap_peak;
  uint64_t last_sample_ms;
  size_t paused_queued_peak; /* output queued for a read-paused connection */
  size_t paused_mem_peak;    /* capacity of its output buffers and decoder */
  int paused_seen;
  size_t nconns_peak;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- Memory ---------------------------------------------------------------------------------- */

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* Bytes the program holds on the heap now (0 when the platform cannot tell). */
static size_t heap_live(void) {
#if defined(HOSTILE_ASAN)
  return __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__)
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#else
  return 0;
#endif
}

static void sample_server(world *w) {
  crpc_server *srv = w->srv;
  if (srv->nconns > w->nconns_peak) w->nconns_peak = srv->nconns;
  for (crpc__list *e = srv->conns.next; e != &srv->conns; e = e->next) {
    crpc__conn *c = CRPC__CONTAINER_OF(e, crpc__conn, owner_link);
    if (!c->read_paused) continue;
    w->paused_seen = 1;
    size_t queued = c->out.len + (c->writing ? c->wout.len : 0);
    size_t mem = c->out.cap + c->wout.cap + c->dec.cap;
    if (queued > w->paused_queued_peak) w->paused_queued_peak = queued;
    if (mem > w->paused_mem_peak) w->paused_mem_peak = mem;
  }
}

static void sample(world *w) {
  long rss = rss_kb();
  size_t heap = heap_live();
  if (rss > w->rss_peak_kb) w->rss_peak_kb = rss;
  if (heap > w->heap_peak) w->heap_peak = heap;
  if (w->srv) sample_server(w);
  w->last_sample_ms = now_ms();
}

/* ---- Server ---------------------------------------------------------------------------------- */

static void on_echo(crpc_server_call *call, const Hostile__EchoRequest *req, void *ud) {
  world *w = ud;
  const char *who = req->who ? req->who : "";
  if (strcmp(who, "legit") == 0)
    w->served_legit++;
  else if (strcmp(who, "slow") == 0)
    w->served_slow++;
  else if (strcmp(who, "hog") == 0)
    w->served_hog++;
  else
    w->served_other++;
  Hostile__EchoReply reply = HOSTILE__ECHO_REPLY__INIT;
  if (req->reply_size) {
    reply.payload.data = w->big;
    reply.payload.len = req->reply_size < HOG_REPLY ? req->reply_size : HOG_REPLY;
  } else {
    reply.payload = req->payload;
  }
  if (hostile__echo__echo__reply(call, &reply) != 0) w->reply_errors++;
}

static const Hostile__Echo__Handlers handlers = {.echo = on_echo};

static void server_start(world *w) {
  static const struct {
    crpc_option opt;
    int64_t value;
  } opts[] = {
      {CRPC_OPT_STALL_TIMEOUT_MS, STALL_MS},
      {CRPC_OPT_HANDSHAKE_TIMEOUT_MS, 2000},
      {CRPC_OPT_MAX_WRITE_BUFFER, MAX_WRITE},
      {CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MAX_MSG},
      {CRPC_OPT_MAX_SEND_MESSAGE_SIZE, MAX_MSG},
      {CRPC_OPT_MIN_PING_INTERVAL_MS, 1000},
      {CRPC_OPT_MAX_CONNECTIONS, 1024},
  };
  assert_int_equal(crpc_server_new(&w->srv, &w->loop), 0);
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
    assert_int_equal(crpc_server_set_option(w->srv, opts[i].opt, opts[i].value), 0);
  assert_int_equal(hostile__echo__crpc_register(w->srv, &handlers, w), 0);
  assert_int_equal(crpc_server_listen(w->srv, "tcp://127.0.0.1:0", &w->port), 0);
  assert_true(w->port > 0);
  snprintf(w->endpoint, sizeof w->endpoint, "tcp://127.0.0.1:%d", w->port);
}

/* ---- Waiting --------------------------------------------------------------------------------- */

typedef int (*world_pred)(world *w);

/* Runs the loop (the driver ticks every TICK_MS) until pred holds or timeout_ms passed. */
static int run_until(world *w, world_pred pred, uint64_t timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  int ok;
  while (!(ok = pred(w)) && now_ms() < end) uv_run(&w->loop, UV_RUN_ONCE);
  return ok;
}

static int never(world *w) {
  (void)w;
  return 0;
}

static void run_for(world *w, uint64_t ms) { (void)run_until(w, never, ms); }

static size_t nconns_want;
static int nconns_is(world *w) { return w->srv->nconns == nconns_want; }

static void wait_nconns(world *w, size_t n, uint64_t timeout_ms, const char *when) {
  nconns_want = n;
  if (!run_until(w, nconns_is, timeout_ms))
    fail_msg("%s: the server holds %zu connections after %llu ms, wanted %zu", when,
             w->srv->nconns, (unsigned long long)timeout_ms, n);
}

/* ---- The legitimate channel ------------------------------------------------------------------ */

static void legit_done(const crpc_status *st, const Hostile__EchoReply *resp, void *ud) {
  legit_call *lc = ud;
  lc->ms = now_ms() - lc->start_ms;
  lc->done = 1;
  lc->code = st->code;
  size_t n = strlen(lc->want);
  lc->ok = st->code == CRPC_STATUS_OK && resp && resp->payload.len == n &&
           memcmp(resp->payload.data, lc->want, n) == 0;
  if (lc->stream) lc->w->legit_done++;
}

static int legit_start(world *w, legit_call *lc) {
  lc->w = w;
  lc->start_ms = now_ms();
  Hostile__EchoRequest req = HOSTILE__ECHO_REQUEST__INIT;
  req.who = (char *)"legit";
  req.payload.data = (uint8_t *)lc->want;
  req.payload.len = strlen(lc->want);
  crpc_call_opts o = {.timeout_ms = LEGIT_TIMEOUT_MS};
  return hostile__echo__echo__start(w->ch, &req, &o, legit_done, lc, NULL);
}

static int one_call_done(world *w) { return w->single.done; }

/* One call outside the stream (warm-up, after the attack): must succeed in time. */
static void one_call(world *w, const char *tag) {
  legit_call *lc = &w->single;
  memset(lc, 0, sizeof *lc);
  snprintf(lc->want, sizeof lc->want, "legit-%s", tag);
  assert_int_equal(legit_start(w, lc), 0);
  if (!run_until(w, one_call_done, LEGIT_TIMEOUT_MS + 1000)) fail_msg("call %s never completed", tag);
  if (!lc->ok)
    fail_msg("call %s: status %d after %llu ms", tag, (int)lc->code, (unsigned long long)lc->ms);
}

/* The steady stream: one call every LEGIT_EVERY_MS from legit_t0, whatever the others do. */
static void legit_tick(world *w, uint64_t now) {
  while (w->legit_on && w->legit_started < LEGIT_CALLS &&
         now >= w->legit_t0 + (uint64_t)w->legit_started * LEGIT_EVERY_MS) {
    legit_call *lc = &w->legit[w->legit_started++];
    lc->stream = 1;
    snprintf(lc->want, sizeof lc->want, "legit-%d", w->legit_started);
    if (legit_start(w, lc) != 0) {
      w->legit_start_errors++;
      lc->done = 1;
      w->legit_done++;
    }
  }
}

/* ---- Slowloris ------------------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  world *w = h->data;
  w->handles_open--;
}

static void slow_poll_closed(uv_handle_t *h) {
  slow_peer *p = h->data;
  close(p->fd);
  p->fd = -1;
  p->w->handles_open--;
}

static void slow_close(slow_peer *p) {
  if (!p->open) return;
  p->open = 0;
  p->drip.data = p->w;
  uv_close((uv_handle_t *)&p->drip, handle_closed);
  uv_close((uv_handle_t *)&p->poll, slow_poll_closed);
}

static void on_slow_readable(uv_poll_t *h, int status, int events) {
  slow_peer *p = h->data;
  (void)events;
  /* libuv reports a socket error (a reset) as status UV_EBADF and stops polling; what arrived
   * before the reset is still to be read. */
  if (!hp_drain(p->fd, &p->in) && status == 0) return;
  p->eof_ms = now_ms();
  p->w->slow_eofs++;
  slow_close(p);
}

/* One more byte of the frame. A passing run never gets to its end: the server closes first. */
static void on_slow_drip(uv_timer_t *t) {
  slow_peer *p = t->data;
  world *w = p->w;
  if (p->sent >= w->slow_frame_len) return;
  if (hp_send(p->fd, w->slow_frame + p->sent, 1) != 1) return; /* gone: EOF comes by the poll */
  if (p->sent == 0) p->first_ms = now_ms();
  p->sent++;
}

static void slow_frame_build(world *w) {
  uint8_t msg[64];
  Hostile__EchoRequest req = HOSTILE__ECHO_REQUEST__INIT;
  req.who = (char *)"slow";
  req.payload.data = (uint8_t *)"zzz";
  req.payload.len = 3;
  assert_true(hostile__echo_request__get_packed_size(&req) <= sizeof msg);
  size_t n = hostile__echo_request__pack(&req, msg);
  w->slow_frame_len = hp_call(w->slow_frame, sizeof w->slow_frame, 1, METHOD, msg, n);
  assert_true(w->slow_frame_len > CRPC__HDR_LEN);
}

static void slow_open(world *w, int i) {
  slow_peer *p = &w->slow[i];
  p->w = w;
  p->fd = hp_connect(w->port, 0);
  uint8_t preface[CRPC__PREFACE_LEN];
  assert_int_equal(hp_send(p->fd, preface, hp_preface(preface)), CRPC__PREFACE_LEN);
  assert_int_equal(uv_poll_init(&w->loop, &p->poll, p->fd), 0);
  assert_int_equal(uv_timer_init(&w->loop, &p->drip), 0);
  p->poll.data = p->drip.data = p;
  p->open = 1;
  w->handles_open += 2;
  assert_int_equal(uv_poll_start(&p->poll, UV_READABLE, on_slow_readable), 0);
  /* Staggered so that bytes trickle in all the time, not in waves. */
  uint64_t first = 20 + (uint64_t)(i % 15) * 10;
  assert_int_equal(uv_timer_start(&p->drip, on_slow_drip, first, SLOW_BYTE_MS), 0);
}

/* ---- The hog: calls for large responses, never reads ------------------------------------------ */

static void hog_build(world *w) {
  uint8_t msg[64];
  Hostile__EchoRequest req = HOSTILE__ECHO_REQUEST__INIT;
  req.who = (char *)"hog";
  req.reply_size = HOG_REPLY;
  size_t mlen = hostile__echo_request__pack(&req, msg);
  size_t frame = CRPC__HDR_LEN + crpc__call_fixed_size(strlen(METHOD), 0) + mlen;
  size_t cap = CRPC__PREFACE_LEN + (size_t)HOG_CALLS * frame;
  w->hog_out = malloc(cap);
  assert_non_null(w->hog_out);
  w->hog_len = hp_preface(w->hog_out);
  for (uint32_t i = 0; i < HOG_CALLS; i++) {
    size_t n = hp_call(w->hog_out + w->hog_len, cap - w->hog_len, 2 * i + 1, METHOD, msg, mlen);
    assert_int_equal(n, frame);
    w->hog_len += n;
  }
}

static void hog_pump(world *w) {
  while (w->hog_fd >= 0 && w->hog_off < w->hog_len) {
    ssize_t n = hp_send(w->hog_fd, w->hog_out + w->hog_off, w->hog_len - w->hog_off);
    if (n <= 0) break;
    w->hog_off += (size_t)n;
  }
}

/* ---- The ping flooder ------------------------------------------------------------------------ */

static void ping_poll_closed(uv_handle_t *h) {
  world *w = h->data;
  close(w->ping_fd);
  w->ping_fd = -1;
  w->handles_open--;
}

static void ping_close(world *w) {
  if (!w->ping_open) return;
  w->ping_open = 0;
  w->ping_on = 0;
  uv_close((uv_handle_t *)&w->ping_poll, ping_poll_closed);
}

static void on_ping_readable(uv_poll_t *h, int status, int events) {
  world *w = h->data;
  (void)events;
  if (!hp_drain(w->ping_fd, &w->ping_in) && status == 0) return; /* see on_slow_readable */
  w->ping_eof_ms = now_ms();
  ping_close(w);
}

static void ping_open(world *w) {
  w->ping_fd = hp_connect(w->port, 0);
  assert_int_equal(uv_poll_init(&w->loop, &w->ping_poll, w->ping_fd), 0);
  w->ping_poll.data = w;
  w->ping_open = 1;
  w->handles_open++;
  assert_int_equal(uv_poll_start(&w->ping_poll, UV_READABLE, on_ping_readable), 0);
  w->ping_out_len = hp_preface(w->ping_out);
  w->ping_on = 1;
}

/* A burst of PINGs per tick once due, whole frames only, until the server hangs up. */
static void ping_tick(world *w, uint64_t now) {
  if (!w->ping_on || now < w->ping_t0) return;
  if (w->ping_out_len == 0) {
    for (int i = 0; i < PING_BURST && w->pings_sent < PING_MAX; i++, w->pings_sent++)
      w->ping_out_len += hp_ping(w->ping_out + w->ping_out_len, (uint64_t)w->pings_sent);
    if (w->pings_sent && !w->ping_first_ms) w->ping_first_ms = now;
  }
  ssize_t n = hp_send(w->ping_fd, w->ping_out, w->ping_out_len);
  if (n <= 0) return;
  memmove(w->ping_out, w->ping_out + n, w->ping_out_len - (size_t)n);
  w->ping_out_len -= (size_t)n;
}

/* ---- The driver ------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t) {
  world *w = t->data;
  uint64_t now = now_ms();
  legit_tick(w, now);
  hog_pump(w);
  ping_tick(w, now);
  if (now - w->last_sample_ms >= 20) sample(w);
}

/* ---- Setup and teardown ---------------------------------------------------------------------- */

static int setup(void **state) {
  world *w = calloc(1, sizeof *w);
  if (!w) return -1;
  w->hog_fd = w->ping_fd = -1;
  for (int i = 0; i < N_SLOW; i++) w->slow[i].fd = -1;
  if (uv_loop_init(&w->loop) != 0 || uv_timer_init(&w->loop, &w->driver) != 0) return -1;
  w->driver.data = w;
  w->handles_open = 1;
  *state = w;
  return 0;
}

static void count_close(void *ud) { ((world *)ud)->closes++; }

static int closes_want;
static int closes_reached(world *w) { return w->closes >= closes_want; }

static void walk_report(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "left on the loop: handle type %s%s\n", uv_handle_type_name(h->type),
          uv_is_closing(h) ? " (closing)" : "");
}

static int teardown(void **state) {
  world *w = *state;
  for (int i = 0; i < N_SLOW; i++) slow_close(&w->slow[i]);
  ping_close(w);
  if (w->hog_fd >= 0) close(w->hog_fd);
  w->hog_fd = -1;
  /* Neither may be touched once closing: the driver samples the server only while w->srv is set. */
  crpc_channel *ch = w->ch;
  crpc_server *srv = w->srv;
  w->ch = NULL;
  w->srv = NULL;
  w->legit_on = w->ping_on = 0;
  closes_want = w->closes;
  if (ch) {
    crpc_channel_close(ch, count_close, w);
    closes_want++;
  }
  if (srv) {
    crpc_server_close(srv, count_close, w);
    closes_want++;
  }
  uv_timer_start(&w->driver, on_tick, TICK_MS, TICK_MS);
  int closed = run_until(w, closes_reached, 5000);
  uv_close((uv_handle_t *)&w->driver, handle_closed);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&w->loop);
  if (rc != 0) uv_walk(&w->loop, walk_report, NULL);
  int handles = w->handles_open;
  free(w->hog_out);
  free(w->big);
  free(w);
  assert_true(closed);
  assert_int_equal(handles, 0);
  assert_int_equal(rc, 0);
  return 0;
}

/* ---- The test -------------------------------------------------------------------------------- */

static int attack_over(world *w) {
  return w->legit_done == LEGIT_CALLS && w->slow_eofs == N_SLOW && w->ping_eof_ms != 0;
}

static void check_legit(world *w) {
  uint64_t max_ms = 0, sum_ms = 0;
  int ok = 0;
  for (int i = 0; i < LEGIT_CALLS; i++) {
    legit_call *lc = &w->legit[i];
    if (!lc->done || !lc->ok || lc->ms >= LEGIT_MAX_MS)
      fail_msg("legit call %d: done %d ok %d status %d after %llu ms", i, lc->done, lc->ok,
               (int)lc->code, (unsigned long long)lc->ms);
    ok++;
    sum_ms += lc->ms;
    if (lc->ms > max_ms) max_ms = lc->ms;
  }
  printf("legit: %d/%d calls ok, latency max %llu ms, mean %.1f ms\n", ok, LEGIT_CALLS,
         (unsigned long long)max_ms, (double)sum_ms / LEGIT_CALLS);
  assert_int_equal(w->legit_start_errors, 0);
  assert_int_equal(w->served_legit, LEGIT_CALLS + 1 /* warm-up */);
}

static void check_slowloris(world *w) {
  uint64_t min_ms = UINT64_MAX, max_ms = 0;
  int goaways = 0;
  size_t max_sent = 0;
  for (int i = 0; i < N_SLOW; i++) {
    slow_peer *p = &w->slow[i];
    if (!p->eof_ms) fail_msg("slowloris %d: no EOF (sent %zu bytes)", i, p->sent);
    if (!p->first_ms) fail_msg("slowloris %d: closed before its frame began", i);
    uint64_t ms = p->eof_ms - p->first_ms;
    if (ms < STALL_MS - 10 || ms > STALL_MS + SLOW_EOF_SLACK_MS)
      fail_msg("slowloris %d: EOF %llu ms after its frame began (stall timeout %d ms)", i,
               (unsigned long long)ms, STALL_MS);
    if (ms < min_ms) min_ms = ms;
    if (ms > max_ms) max_ms = ms;
    if (p->sent > max_sent) max_sent = p->sent;
    hp_seen seen;
    hp_scan(&p->in, &seen);
    assert_true(seen.preface_ok);
    assert_int_equal(seen.statuses, 0); /* never served */
    if (seen.goaways) {
      assert_int_equal(seen.goaway_code, CRPC__GOAWAY_PROTOCOL_ERROR);
      goaways++;
    }
  }
  printf("slowloris: %d/%d closed, EOF %llu..%llu ms after the first frame byte, at most %zu of "
         "%zu frame bytes sent, GOAWAY PROTOCOL_ERROR seen by %d\n",
         w->slow_eofs, N_SLOW, (unsigned long long)min_ms, (unsigned long long)max_ms, max_sent,
         w->slow_frame_len, goaways);
  assert_true(max_sent < w->slow_frame_len);
  assert_int_equal(goaways, N_SLOW);
  assert_int_equal(w->served_slow, 0);
}

static void check_ping(world *w) {
  hp_seen seen;
  hp_scan(&w->ping_in, &seen);
  uint64_t ms = w->ping_eof_ms - w->ping_first_ms;
  printf("ping flood: %d PINGs sent, %d ACKs, GOAWAY code %u, EOF %llu ms after the first PING\n",
         w->pings_sent, seen.ping_acks, (unsigned)seen.goaway_code, (unsigned long long)ms);
  assert_true(seen.preface_ok);
  assert_int_equal(seen.goaways, 1);
  assert_int_equal(seen.goaway_code, CRPC__GOAWAY_ENHANCE_YOUR_CALM);
  assert_true(seen.ping_acks < 8); /* three strikes, not a flood of answers */
  assert_true(ms <= PING_EOF_MAX_MS);
}

static int hog_count;
static int hog_moved(world *w) { return w->served_hog != hog_count; }

static void check_hog(world *w) {
  /* The server paused reading it: no more of its calls run, however long we wait. */
  hog_count = w->served_hog;
  int moved = run_until(w, hog_moved, 500);
  printf("hog: %d of %d calls served (%zu of %zu request bytes taken by the kernel); queued for it "
         "at most %zu bytes, %zu bytes of buffers\n",
         w->served_hog, HOG_CALLS, w->hog_off, w->hog_len, w->paused_queued_peak,
         w->paused_mem_peak);
  assert_false(moved);
  assert_true(w->served_hog > 0);
  assert_true(w->served_hog < HOG_CALLS / 4);
  assert_true(w->paused_seen);
  /* Documented: MAX_WRITE_BUFFER of queued output plus one message (and its frame). */
  assert_true(w->paused_queued_peak <= (size_t)MAX_WRITE + MAX_MSG + 4096);
  assert_true(w->paused_mem_peak <= 2 * ((size_t)MAX_WRITE + MAX_MSG) + 2 * 65536);
}

static void check_memory(world *w) {
  long rss_growth_kb = w->rss_peak_kb - w->rss0_kb;
  long long heap_growth = (long long)w->heap_peak - (long long)w->heap0;
  size_t doc = (size_t)MAX_WRITE + MAX_MSG;
  size_t heap_bound = (size_t)N_HOSTILE * PER_CONN_BYTES + 2 * doc + HEAP_SLACK;
  size_t rss_bound = (size_t)N_HOSTILE * PER_CONN_BYTES + doc + RSS_SLACK;
  printf("memory: VmRSS %ld kB -> peak %ld kB (+%ld kB, bound %zu kB); heap %zu -> peak %zu bytes "
         "(%+lld, bound %zu)%s\n",
         w->rss0_kb, w->rss_peak_kb, rss_growth_kb, rss_bound / 1024, w->heap0, w->heap_peak,
         heap_growth, heap_bound, w->heap0 ? "" : " (heap not measurable here)");
  assert_true(w->rss0_kb > 0);
  assert_true(rss_growth_kb * 1024 < (long)rss_bound);
  assert_true(heap_growth < (long long)heap_bound);
}

static void begin_attack(world *w) {
  uint64_t t0 = now_ms();
  for (int i = 0; i < N_SLOW; i++) slow_open(w, i);
  w->hog_fd = hp_connect(w->port, HOG_RCVBUF);
  hog_pump(w);
  ping_open(w);
  w->ping_t0 = t0 + PING_START_MS;
  w->legit_t0 = t0;
  w->legit_on = 1;
  printf("attack: %d slowloris + hog + ping flooder connected in %llu ms\n", N_SLOW,
         (unsigned long long)(now_ms() - t0));
}

static void test_hostile_peers(void **state) {
  world *w = *state;
  w->big = malloc(HOG_REPLY);
  assert_non_null(w->big);
  memset(w->big, 'h', HOG_REPLY);
  slow_frame_build(w);
  server_start(w);
  hog_build(w);
  assert_int_equal(crpc_channel_new(&w->ch, &w->loop, w->endpoint), 0);
  assert_int_equal(uv_timer_start(&w->driver, on_tick, TICK_MS, TICK_MS), 0);

  /* Warm-up: the legitimate connection exists and has served a call before the baseline. */
  one_call(w, "warm");
  wait_nconns(w, 1, 2000, "after the warm-up");
  run_for(w, 100);
  w->rss0_kb = w->rss_peak_kb = rss_kb();
  w->heap0 = w->heap_peak = heap_live();

  begin_attack(w);
  if (!run_until(w, attack_over, 20000))
    fail_msg("attack not over after 20 s: legit %d/%d done, slowloris %d/%d closed, ping EOF %d",
             w->legit_done, LEGIT_CALLS, w->slow_eofs, N_SLOW, w->ping_eof_ms != 0);
  sample(w);
  check_legit(w);
  check_slowloris(w);
  check_ping(w);
  check_hog(w);
  printf("server: at most %zu connections during the attack\n", w->nconns_peak);
  assert_true(w->nconns_peak >= N_SLOW + 2); /* the ping flooder may be gone by the first sample */
  /* The hog has taken none of its output for STALL_TIMEOUT_MS: the server lets it go too, so
   * only the legitimate connection is left. */
  wait_nconns(w, 1, 3000, "slowloris, ping flooder and hog gone");
  close(w->hog_fd);
  w->hog_fd = -1;
  one_call(w, "after");
  sample(w);
  check_memory(w);
  printf("memory after the attack: VmRSS %ld kB, heap %zu bytes\n", rss_kb(), heap_live());
  assert_int_equal(w->served_other, 0);
  assert_int_equal(w->reply_errors, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hostile_peers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
