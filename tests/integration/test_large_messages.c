/* Large messages end to end, over TCP/IPv4 and a Unix socket: the paths that send a message from
 * its own memory (send_direct.c: one writev, what the kernel does not take copied into the output
 * buffer) and that decode a large bytes field in place (unpack_lend.c: the decoder's buffer adopted
 * by the call's arena), on both sides.
 *
 * Payloads of 64 KiB - 1 and 64 KiB bytes, messages of exactly 64 KiB - 1 and 64 KiB bytes (the
 * thresholds of both paths), 1 MiB and 8 MiB are echoed
 *   - by blocking calls, one after another and from several threads at once;
 *   - by async calls on a loop, 32 in flight at once, so that writes are taken only in part and
 *     the remainder path runs on both sides;
 *   - by a server that answers later, from a timer, with a reply whose bytes field points into
 *     the request (the harness's Echo handler does that: the request is arena-owned, so the
 *     adopted buffer must outlive the handler and the send while more large requests are read).
 * Every payload is a pattern seeded by the call, and every byte of every response is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_MSG (16 << 20) /* both sides' MAX_RECV/MAX_SEND_MESSAGE_SIZE */
#define IN_FLIGHT 32
#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- payloads --------------------------------------------------------------------------------*/

static uint32_t xs(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* n bytes of the pattern of `seed` (the same seed, the same bytes). */
static void fill(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 0x9e3779b9u;
  if (!s) s = 1;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t v = xs(&s);
    memcpy(p + i, &v, 4);
  }
  uint32_t v = xs(&s);
  for (; i < n; i++, v >>= 8) p[i] = (uint8_t)v;
}

/* Offset of the first byte of p that differs from the pattern, or n. */
static size_t mismatch(const uint8_t *p, size_t n, uint32_t seed) {
  uint8_t *want = malloc(n ? n : 1);
  if (!want) return 0;
  fill(want, n, seed);
  size_t at = n;
  if (n && memcmp(p, want, n) != 0)
    for (at = 0; at < n && p[at] == want[at]; at++) {
    }
  free(want);
  return at;
}

/* The payload length that makes an EchoRequest {payload, seq, delay_ms} exactly `msg` bytes. */
static size_t payload_for_message(size_t msg, uint32_t seq, uint32_t delay_ms) {
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.seq = seq;
  req.delay_ms = delay_ms;
  for (size_t n = msg > 16 ? msg - 16 : 0; n <= msg; n++) {
    req.payload.len = n;
    if (itest__echo_request__get_packed_size(&req) == msg) return n;
  }
  fail_msg("no payload makes a %zu-byte message", msg);
  return 0;
}

/* A size under test: a payload length, or (msg) an exact message length. */
typedef struct size_case {
  const char *name;
  size_t bytes;
  int msg; /* bytes is the length of the whole request message */
} size_case;

static const size_case sizes[] = {
    {"payload 64 KiB - 1", 64 * KIB - 1, 0}, {"payload 64 KiB", 64 * KIB, 0},
    {"message 64 KiB - 1", 64 * KIB - 1, 1}, {"message 64 KiB", 64 * KIB, 1},
    {"payload 1 MiB", MIB, 0},               {"payload 8 MiB", 8 * MIB, 0},
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static size_t payload_len(const size_case *sc, uint32_t seq, uint32_t delay_ms) {
  return sc->msg ? payload_for_message(sc->bytes, seq, delay_ms) : sc->bytes;
}

/* ---- servers and channels ----------------------------------------------------------------------
 * The harness's Echo handlers on a server of our own: 32 calls of 8 MiB in flight queue 256 MiB
 * each way, so MAX_WRITE_BUFFER is raised on both sides (at the default, each side would stop
 * reading from a peer that is not reading either). */

#define MAX_WRITE (1024 * 1024 * 1024)

typedef struct lserver {
  uv_loop_t loop;
  crpc_server *srv;
  uv_async_t stop;
  uv_thread_t thread;
  itest_stats st;
  char endpoint[256];
  char unix_path[256];
  int close_cbs;
  atomic_int thread_done;
} lserver;

static void lserver_closed(void *ud) { ((lserver *)ud)->close_cbs++; }

static void lserver_on_stop(uv_async_t *a) {
  lserver *s = a->data;
  crpc_server_close(s->srv, lserver_closed, s);
  uv_close((uv_handle_t *)a, NULL);
}

static void lserver_thread(void *arg) {
  lserver *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  atomic_store(&s->thread_done, 1);
}

static lserver *start_server(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  lserver *s = calloc(1, sizeof *s);
  assert_non_null(s);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  assert_int_equal(crpc_server_new(&s->srv, &s->loop), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_WRITE_BUFFER, MAX_WRITE), 0);
  assert_int_equal(itest__echo__crpc_register(s->srv, &itest_echo_handlers, &s->st), 0);
  char ep[256];
  if (t->listen)
    snprintf(ep, sizeof ep, "%s", t->listen);
  else
    itest_unused_endpoint(t, ep, sizeof ep); /* a fresh socket path */
  int port = -1;
  int rc = crpc_server_listen(s->srv, ep, &port);
  if (rc != 0) fail_msg("listen on %s: %s", ep, crpc_strerror(rc));
  if (!t->listen) {
    snprintf(s->endpoint, sizeof s->endpoint, "%s", ep);
    snprintf(s->unix_path, sizeof s->unix_path, "%s", ep + 5);
  } else {
    const char *colon = strrchr(ep, ':');
    assert_true(port > 0);
    snprintf(s->endpoint, sizeof s->endpoint, "%.*s:%d", (int)(colon - ep), ep, port);
  }
  assert_int_equal(uv_async_init(&s->loop, &s->stop, lserver_on_stop), 0);
  s->stop.data = s;
  assert_int_equal(uv_thread_create(&s->thread, lserver_thread, s), 0);
  return s;
}

/* Closes the server (bounded: 20 s), checks every call it received was finished, and returns how
 * many it received. */
static int stop_server(lserver *s) {
  uv_async_send(&s->stop);
  uint64_t until = itest_now_ms() + 20000;
  while (!atomic_load(&s->thread_done) && itest_now_ms() < until) uv_sleep(2);
  if (!atomic_load(&s->thread_done)) fail_msg("server on %s: close did not finish within 20 s", s->endpoint);
  uv_thread_join(&s->thread);
  assert_int_equal(s->close_cbs, 1);
  int received = atomic_load(&s->st.received);
  assert_int_equal(atomic_load(&s->st.finished), received);
  assert_int_equal(uv_loop_close(&s->loop), 0);
  if (s->unix_path[0]) unlink(s->unix_path);
  free(s);
  return received;
}

static crpc_channel *open_channel(uv_loop_t *loop, lserver *srv) {
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, loop, srv->endpoint), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_WRITE_BUFFER, MAX_WRITE), 0);
  return ch;
}

/* ---- blocking calls ----------------------------------------------------------------------------*/

/* One blocking echo of len pattern bytes; "" when it came back intact, else what went wrong. */
static void blocking_echo(crpc_channel *ch, size_t len, uint32_t seq, char *why, size_t why_len) {
  why[0] = '\0';
  uint8_t *data = malloc(len ? len : 1);
  if (!data) {
    snprintf(why, why_len, "out of memory");
    return;
  }
  fill(data, len, seq);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.seq = seq;
  req.payload.data = data;
  req.payload.len = len;
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 30000};
  int rc = itest__echo__echo__call(ch, &req, &resp, &st, &opts);
  memset(data, 0, len); /* the request is the caller's again: nothing may still point into it */
  free(data);
  size_t bad;
  if (rc != 0)
    snprintf(why, why_len, "seq %u: call returned %s", seq, crpc_err_name(rc));
  else if (st.code != CRPC_STATUS_OK)
    snprintf(why, why_len, "seq %u (%zu bytes): %s: %s", seq, len, crpc_code_name(st.code),
             st.message ? st.message : "");
  else if (!resp)
    snprintf(why, why_len, "seq %u: OK without a response", seq);
  else if (resp->seq != seq)
    snprintf(why, why_len, "seq %u: response for seq %u", seq, resp->seq);
  else if (resp->payload.len != len)
    snprintf(why, why_len, "seq %u: %zu bytes back for %zu", seq, resp->payload.len, len);
  else if ((bad = mismatch(resp->payload.data, len, seq)) != len)
    snprintf(why, why_len, "seq %u (%zu bytes): byte %zu differs", seq, len, bad);
  if (resp) itest__echo_reply__free_unpacked(resp, NULL);
  crpc_status_reset(&st);
}

static void blocking_sizes(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch = open_channel(NULL, srv);
  char why[256];
  for (size_t k = 0; k < NSIZES; k++)
    for (uint32_t rep = 0; rep < 2; rep++) {
      uint32_t seq = (uint32_t)(k * 10 + rep + 1);
      blocking_echo(ch, payload_len(&sizes[k], seq, 0), seq, why, sizeof why);
      if (why[0]) fail_msg("%s: %s", sizes[k].name, why);
    }
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(stop_server(srv), 2 * (int)NSIZES);
}

typedef struct bworker {
  crpc_channel *ch;
  int index;
  int done;
  char why[256];
  uv_thread_t thread;
} bworker;

#define BTHREADS 4

static void bworker_run(void *arg) {
  bworker *w = arg;
  static const size_t lens[] = {64 * KIB - 1, MIB, 64 * KIB, 3 * MIB + 7};
  for (int i = 0; i < 8 && !w->why[0]; i++) {
    uint32_t seq = (uint32_t)(1000 + w->index * 100 + i);
    blocking_echo(w->ch, lens[(size_t)(i + w->index) % 4], seq, w->why, sizeof w->why);
    if (!w->why[0]) w->done++;
  }
}

/* Several threads at once on one blocking channel: their large frames share one connection. */
static void blocking_threads(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch = open_channel(NULL, srv);
  bworker ws[BTHREADS];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < BTHREADS; i++) {
    ws[i].ch = ch;
    ws[i].index = i;
    assert_int_equal(uv_thread_create(&ws[i].thread, bworker_run, &ws[i]), 0);
  }
  for (int i = 0; i < BTHREADS; i++) uv_thread_join(&ws[i].thread);
  for (int i = 0; i < BTHREADS; i++) {
    if (ws[i].why[0]) fail_msg("thread %d: %s", i, ws[i].why);
    assert_int_equal(ws[i].done, 8);
  }
  crpc_channel_close(ch, NULL, NULL);
  stop_server(srv);
}

/* ---- async calls ------------------------------------------------------------------------------*/

typedef struct acall {
  uint32_t seq;
  size_t len;
  int completions;
  int ok;
  char why[200];
} acall;

/* Checks the whole response here: it is crpc's, valid during the callback only. */
static void acall_done(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  acall *c = ud;
  c->completions++;
  size_t bad;
  if (st->code != CRPC_STATUS_OK)
    snprintf(c->why, sizeof c->why, "%s: %s", crpc_code_name(st->code),
             st->message ? st->message : "");
  else if (!resp)
    snprintf(c->why, sizeof c->why, "OK without a response");
  else if (resp->seq != c->seq)
    snprintf(c->why, sizeof c->why, "response for seq %u", resp->seq);
  else if (resp->payload.len != c->len)
    snprintf(c->why, sizeof c->why, "%zu bytes back for %zu", resp->payload.len, c->len);
  else if ((bad = mismatch(resp->payload.data, c->len, c->seq)) != c->len)
    snprintf(c->why, sizeof c->why, "byte %zu of %zu differs", bad, c->len);
  else
    c->ok = 1;
}

typedef struct batch {
  acall *c;
  int n;
} batch;

static int batch_done(void *arg) {
  batch *b = arg;
  for (int i = 0; i < b->n; i++)
    if (b->c[i].completions == 0) return 0;
  return 1;
}

/* Starts n echo calls of size sc at once (seq base + i, answered after delay(i) ms), runs the
 * loop until all completed, and checks every one. */
static void async_batch(uv_loop_t *loop, crpc_channel *ch, const size_case *sc, int n,
                        uint32_t base, uint32_t (*delay)(int)) {
  acall *calls = calloc((size_t)n, sizeof *calls);
  assert_non_null(calls);
  for (int i = 0; i < n; i++) {
    uint32_t seq = base + (uint32_t)i;
    uint32_t delay_ms = delay ? delay(i) : 0;
    size_t len = payload_len(sc, seq, delay_ms);
    uint8_t *data = malloc(len ? len : 1);
    assert_non_null(data);
    fill(data, len, seq);
    Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
    req.seq = seq;
    req.delay_ms = delay_ms;
    req.payload.data = data;
    req.payload.len = len;
    if (sc->msg) assert_int_equal(itest__echo_request__get_packed_size(&req), sc->bytes);
    calls[i].seq = seq;
    calls[i].len = len;
    assert_int_equal(itest__echo__echo__start(ch, &req, NULL, acall_done, &calls[i], NULL), 0);
    memset(data, 0xEE, len); /* encoded before start returned: nothing may point into it now */
    free(data);
  }
  batch b = {calls, n};
  if (!itest_run_until(loop, batch_done, &b, 30000)) fail_msg("%s: calls still open after 30 s", sc->name);
  for (int i = 0; i < n; i++) {
    if (calls[i].completions != 1)
      fail_msg("%s: call %d completed %d times", sc->name, i, calls[i].completions);
    if (!calls[i].ok) fail_msg("%s: call %d (seq %u): %s", sc->name, i, calls[i].seq, calls[i].why);
  }
  free(calls);
}

static void async_in_flight(void **state) {
  lserver *srv = start_server(state);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel(&loop, srv);
  int total = 0;
  for (size_t k = 0; k < NSIZES; k++) {
    async_batch(&loop, ch, &sizes[k], IN_FLIGHT, (uint32_t)(100 * (k + 1)), NULL);
    total += IN_FLIGHT;
  }
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  assert_int_equal(stop_server(srv), total);
}

/* Answers spread over 0..~30 ms, the later calls mostly first. */
static uint32_t spread_delay(int i) { return (uint32_t)((IN_FLIGHT - i) * 7 % 31); }

/* The reply's payload is the request's (the harness's handler points it there) and goes out from
 * a timer, after the requests behind it were read into buffers of their own. */
static void async_delayed_replies(void **state) {
  lserver *srv = start_server(state);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel(&loop, srv);
  static const size_case mixed[] = {{"delayed message 64 KiB", 64 * KIB, 1},
                                    {"delayed 1 MiB", MIB, 0}};
  for (size_t k = 0; k < sizeof mixed / sizeof mixed[0]; k++)
    async_batch(&loop, ch, &mixed[k], IN_FLIGHT, (uint32_t)(5000 + 100 * k), spread_delay);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  stop_server(srv);
}

/* Sizes mixed in one batch: large frames between small ones on one connection. */
static void async_mixed_sizes(void **state) {
  lserver *srv = start_server(state);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel(&loop, srv);
  acall calls[IN_FLIGHT];
  memset(calls, 0, sizeof calls);
  static const size_t lens[] = {10, 64 * KIB, 100, MIB + 3, 64 * KIB - 1, 0, 200 * KIB, 2 * MIB};
  for (int i = 0; i < IN_FLIGHT; i++) {
    uint32_t seq = 9000 + (uint32_t)i;
    size_t len = lens[i % 8];
    uint8_t *data = malloc(len ? len : 1);
    assert_non_null(data);
    fill(data, len, seq);
    Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
    req.seq = seq;
    req.delay_ms = i % 3 == 0 ? (uint32_t)(i % 5) : 0;
    req.payload.data = data;
    req.payload.len = len;
    calls[i].seq = seq;
    calls[i].len = len;
    assert_int_equal(itest__echo__echo__start(ch, &req, NULL, acall_done, &calls[i], NULL), 0);
    free(data);
  }
  batch b = {calls, IN_FLIGHT};
  assert_true(itest_run_until(&loop, batch_done, &b, 30000));
  for (int i = 0; i < IN_FLIGHT; i++) {
    assert_int_equal(calls[i].completions, 1);
    if (!calls[i].ok) fail_msg("call %d (%zu bytes): %s", i, calls[i].len, calls[i].why);
  }
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  stop_server(srv);
}

#define CASES(t)                                                                                \
  ITEST_CASE_(blocking_sizes, t), ITEST_CASE_(blocking_threads, t),                          \
      ITEST_CASE_(async_in_flight, t), ITEST_CASE_(async_delayed_replies, t),                \
      ITEST_CASE_(async_mixed_sizes, t)

/* usage: integration_large_messages [tcp4|unix [in_flight|rest]]: one transport, and either the
 * 32-in-flight test alone or all but it (ctest runs each part on its own, to keep each short);
 * everything without arguments. */
int main(int argc, char **argv) {
  const struct CMUnitTest tcp4[] = {CASES(tcp4)};
  const struct CMUnitTest unix_[] = {CASES(unix)};
  const char *only = argc > 1 ? argv[1] : NULL;
  const char *part = argc > 2 ? argv[2] : NULL;
  if ((only && strcmp(only, "tcp4") != 0 && strcmp(only, "unix") != 0) ||
      (part && strcmp(part, "in_flight") != 0 && strcmp(part, "rest") != 0)) {
    fprintf(stderr, "usage: %s [tcp4|unix [in_flight|rest]]\n", argv[0]);
    return 2;
  }
  if (part && strcmp(part, "in_flight") == 0) cmocka_set_test_filter("async_in_flight/*");
  if (part && strcmp(part, "rest") == 0) cmocka_set_skip_filter("async_in_flight/*");
  int failed = 0;
  if (!only || strcmp(only, "tcp4") == 0) failed += cmocka_run_group_tests_name("tcp4", tcp4, NULL, NULL);
  if (!only || strcmp(only, "unix") == 0) failed += cmocka_run_group_tests_name("unix", unix_, NULL, NULL);
  return failed;
}
