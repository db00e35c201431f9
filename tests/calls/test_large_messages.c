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
 * Every payload is a pattern seeded by the call, and every byte of every response is checked.
 *
 * Also (see their sections): large responses received split where their large bytes field begins
 * (frame.c crpc__decoder_split, unpack_lend.c crpc__unpack_split), for blocking and async calls,
 * and the responses that must not be lent; and MAX_WRITE_BUFFER at its minimum on both sides with
 * 32 large calls started at once (channels keep reading and refuse new calls instead). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/channel.h" /* crpc_channel.io: where its decoders count splits */
#include "wire/frame.h"            /* crpc__split_stats */
#include "itest.h"
#include "large.crpc.h"

#define MAX_MSG (16 << 20) /* both sides' MAX_RECV/MAX_SEND_MESSAGE_SIZE */
#define IN_FLIGHT 32
/* How long a batch may take before the test calls it stuck: a bound on liveness, not on speed.
 * 32 calls of 8 MiB take ~15 s under ASan on an idle 2-core machine and twice that when ctest
 * runs a heavy test beside them, so the bound leaves room for a loaded CI runner. */
#define LIVENESS_MS 120000
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

static void large_register(lserver *s);

/* A server with MAX_WRITE_BUFFER max_write, serving itest.Test and ltest.Large. */
static lserver *start_server_w(void **state, int64_t max_write) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  lserver *s = calloc(1, sizeof *s);
  assert_non_null(s);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  assert_int_equal(crpc_server_new(&s->srv, &s->loop), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_server_set_option(s->srv, CRPC_OPT_MAX_WRITE_BUFFER, max_write), 0);
  assert_int_equal(itest__test__crpc_register(s->srv, &itest_echo_handlers, &s->st), 0);
  large_register(s);
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

static lserver *start_server(void **state) { return start_server_w(state, MAX_WRITE); }

/* Closes the server (bounded: 20 s), checks every call it received was finished, and returns how
 * many it received. */
static int stop_server(lserver *s) {
  uv_async_send(&s->stop);
  uint64_t until = ts_now_ms() + 20000;
  while (!atomic_load(&s->thread_done) && ts_now_ms() < until) uv_sleep(2);
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

/* Where every channel of this file counts its split receives (see "split receive" below). */
static crpc__split_stats split_stats;

static crpc_channel *open_channel_w(uv_loop_t *loop, lserver *srv, int64_t max_write) {
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, loop, srv->endpoint), 0);
  ch->io.split_stats = &split_stats; /* before its first connection (split receive, below) */
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, MAX_MSG), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_WRITE_BUFFER, max_write), 0);
  return ch;
}

static crpc_channel *open_channel(uv_loop_t *loop, lserver *srv) {
  return open_channel_w(loop, srv, MAX_WRITE);
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
  crpc_call_opts opts = {.timeout_ms = LIVENESS_MS};
  int rc = itest__test__echo__call(ch, &req, &resp, &st, &opts);
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
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, acall_done, &calls[i], NULL), 0);
    memset(data, 0xEE, len); /* encoded before start returned: nothing may point into it now */
    free(data);
  }
  batch b = {calls, n};
  if (!itest_run_until(loop, batch_done, &b, LIVENESS_MS))
    fail_msg("%s: calls still open after %d s", sc->name, LIVENESS_MS / 1000);
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
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, acall_done, &calls[i], NULL), 0);
    free(data);
  }
  batch b = {calls, IN_FLIGHT};
  assert_true(itest_run_until(&loop, batch_done, &b, LIVENESS_MS));
  for (int i = 0; i < IN_FLIGHT; i++) {
    assert_int_equal(calls[i].completions, 1);
    if (!calls[i].ok) fail_msg("call %d (%zu bytes): %s", i, calls[i].len, calls[i].why);
  }
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  stop_server(srv);
}

/* ---- split receive -----------------------------------------------------------------------------
 * A large OK response of a unary call is received split where its large bytes field's value
 * begins (crpc__call_split_at, crpc__decoder_split) and that value becomes the field's own
 * allocation (crpc__unpack_split): for a blocking call the caller's, freed with the rest of the
 * message by protobuf_c_message_free_unpacked(resp, NULL); for an async call the call's arena's.
 * The server answers ltest.Large (protos/large.proto): BigReply has fields before and after the
 * large one; the other replies must take the ordinary path (a large string, a repeated bytes
 * field, the field twice, a rest too large to lend) or fail cleanly (malformed after the value).
 *
 * Which path a response took is counted by the client's decoders (crpc__split_stats, which every
 * channel of this file points at, open_channel_w): the client's splits and the tails that became a
 * field's block, and the last such block, so that a test can check the response's field is that
 * very block (no copy). The server never splits (its connections have no split hook). */

static int splits_now(void) { return (int)atomic_load(&split_stats.splits); }
static int tails_now(void) { return (int)atomic_load(&split_stats.tails_lent); }
static uintptr_t last_tail_now(void) { return atomic_load(&split_stats.last_tail); }

#define NOTE_SMALL 100
#define NOTE_LARGE 20000 /* the rest of the message past 16 KiB: not lent */
#define SMALL_CHUNK 1000

/* The replies, built the same way by the server and by the client that checks them. */
typedef struct reply_parts {
  uint8_t *chunk[4];
  ProtobufCBinaryData bins[4];
  char name[32], text[32];
  char *note, *big_text;
  uint32_t nums[3];
  Ltest__Trailer trailer;
} reply_parts;

static char letter(size_t i, uint32_t seq) { return (char)('a' + (i * 7 + seq) % 26); }

static char *letters(size_t n, uint32_t seq) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  for (size_t i = 0; i < n; i++) s[i] = letter(i, seq);
  s[n] = '\0';
  return s;
}

static void parts_init(reply_parts *p, const Ltest__BigRequest *q) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "reply-%u", q->seq);
  snprintf(p->text, sizeof p->text, "end-%u", q->seq);
  p->note = letters(q->note_size, q->seq);
  p->nums[0] = q->seq;
  p->nums[1] = q->seq * 3u;
  p->nums[2] = 0xffffffffu - q->seq;
  ltest__trailer__init(&p->trailer);
  p->trailer.text = p->text;
  p->trailer.check = q->seq * 0x9e3779b97f4a7c15ull;
}

/* Value k of `data`: the large one (size bytes, seeded by seq) or a small one (seq + 1 + k). */
static ProtobufCBinaryData chunk(reply_parts *p, const Ltest__BigRequest *q, unsigned k, int big) {
  size_t n = big ? q->size : SMALL_CHUNK;
  uint32_t seed = big ? q->seq : q->seq + 1 + k;
  p->chunk[k] = malloc(n ? n : 1);
  assert_non_null(p->chunk[k]);
  fill(p->chunk[k], n, seed);
  ProtobufCBinaryData b = {n, p->chunk[k]};
  return b;
}

static void parts_free(reply_parts *p) {
  for (int k = 0; k < 4; k++) free(p->chunk[k]);
  free(p->note);
  free(p->big_text);
}

static void build_big(Ltest__BigReply *r, reply_parts *p, const Ltest__BigRequest *q) {
  parts_init(p, q);
  ltest__big_reply__init(r);
  r->seq = q->seq;
  r->name = p->name;
  r->data = chunk(p, q, 0, 1);
  r->n_nums = 3;
  r->nums = p->nums;
  r->trailer = &p->trailer;
  r->note = p->note;
  r->after = -(int64_t)q->seq * 1000003;
}

/* chunks values (1..4), the large one first or last. */
static unsigned many_chunks(const Ltest__BigRequest *q) {
  return q->chunks < 1 ? 1 : q->chunks > 4 ? 4 : q->chunks;
}

static void build_many(Ltest__ManyReply *r, reply_parts *p, const Ltest__BigRequest *q) {
  parts_init(p, q);
  ltest__many_reply__init(r);
  unsigned n = many_chunks(q);
  for (unsigned k = 0; k < n; k++)
    p->bins[k] = chunk(p, q, k, q->big_first ? k == 0 : k == n - 1);
  r->seq = q->seq;
  r->name = p->name;
  r->n_data = n;
  r->data = p->bins;
  r->n_nums = 3;
  r->nums = p->nums;
  r->trailer = &p->trailer;
  r->note = p->note;
  r->after = -(int64_t)q->seq * 1000003;
}

static void build_text(Ltest__TextReply *r, reply_parts *p, const Ltest__BigRequest *q) {
  parts_init(p, q);
  p->big_text = letters(q->size, q->seq + 7);
  ltest__text_reply__init(r);
  r->seq = q->seq;
  r->text = p->big_text;
  r->note = p->note;
}

static void build_bad(Ltest__BadReply *r, reply_parts *p, const Ltest__BigRequest *q) {
  parts_init(p, q);
  ltest__bad_reply__init(r);
  r->seq = q->seq;
  r->name = p->name;
  r->data = chunk(p, q, 0, 1);
  r->after.data = (uint8_t *)"xyz";
  r->after.len = 3;
}

/* Server side (the lserver's thread): counted in its itest_stats like the Echo calls. */
static void large_get(crpc_server_call *call, const Ltest__BigRequest *q, void *ud) {
  itest_stats *st = ud;
  atomic_fetch_add(&st->received, 1);
  Ltest__BigReply r;
  reply_parts p;
  build_big(&r, &p, q);
  if (q->trailer_size) { /* the STATUS then has a metadata block before the message */
    char *pad = letters(q->trailer_size, q->seq + 3);
    const uint8_t *tag = (const uint8_t *)"\0\1\2";
    assert_int_equal(
        crpc_server_call_add_trailer(call, "pad", (const uint8_t *)pad, q->trailer_size), 0);
    assert_int_equal(crpc_server_call_add_trailer(call, "tag-bin", tag, 3), 0);
    free(pad);
  }
  assert_int_equal(ltest__large__get__reply(call, &r), 0); /* 0 also if the client is gone */
  parts_free(&p);
  atomic_fetch_add(&st->finished, 1);
}

static void large_get_many(crpc_server_call *call, const Ltest__BigRequest *q, void *ud) {
  itest_stats *st = ud;
  atomic_fetch_add(&st->received, 1);
  Ltest__ManyReply r;
  reply_parts p;
  build_many(&r, &p, q);
  assert_int_equal(ltest__large__get_many__reply(call, &r), 0);
  parts_free(&p);
  atomic_fetch_add(&st->finished, 1);
}

static void large_get_text(crpc_server_call *call, const Ltest__BigRequest *q, void *ud) {
  itest_stats *st = ud;
  atomic_fetch_add(&st->received, 1);
  Ltest__TextReply r;
  reply_parts p;
  build_text(&r, &p, q);
  assert_int_equal(ltest__large__get_text__reply(call, &r), 0);
  parts_free(&p);
  atomic_fetch_add(&st->finished, 1);
}

static void large_get_bad(crpc_server_call *call, const Ltest__BigRequest *q, void *ud) {
  itest_stats *st = ud;
  atomic_fetch_add(&st->received, 1);
  Ltest__BadReply r;
  reply_parts p;
  build_bad(&r, &p, q);
  assert_int_equal(ltest__large__get_bad__reply(call, &r), 0);
  parts_free(&p);
  atomic_fetch_add(&st->finished, 1);
}

static const Ltest__Large__Handlers large_handlers = {
    .get = large_get, .get_many = large_get_many, .get_text = large_get_text,
    .get_bad = large_get_bad};

static void large_register(lserver *s) {
  assert_int_equal(ltest__large__crpc_register(s->srv, &large_handlers, &s->st), 0);
}

/* Client side: "" when r is the reply build_big makes for q, else what differs. */
static void check_big(const Ltest__BigReply *r, const Ltest__BigRequest *q, char *why, size_t wl) {
  char name[32], text[32];
  snprintf(name, sizeof name, "reply-%u", q->seq);
  snprintf(text, sizeof text, "end-%u", q->seq);
  size_t bad;
  why[0] = '\0';
  if (r->seq != q->seq)
    snprintf(why, wl, "seq %u for %u", r->seq, q->seq);
  else if (!r->name || strcmp(r->name, name) != 0)
    snprintf(why, wl, "seq %u: name differs", q->seq);
  else if (r->data.len != q->size)
    snprintf(why, wl, "seq %u: %zu bytes of data for %u", q->seq, r->data.len, q->size);
  else if ((bad = mismatch(r->data.data, r->data.len, q->seq)) != r->data.len)
    snprintf(why, wl, "seq %u: data byte %zu of %zu differs", q->seq, bad, r->data.len);
  else if (r->n_nums != 3 || r->nums[0] != q->seq || r->nums[1] != q->seq * 3u ||
           r->nums[2] != 0xffffffffu - q->seq)
    snprintf(why, wl, "seq %u: nums differ", q->seq);
  else if (!r->trailer || !r->trailer->text || strcmp(r->trailer->text, text) != 0 ||
           r->trailer->check != q->seq * 0x9e3779b97f4a7c15ull)
    snprintf(why, wl, "seq %u: trailer differs", q->seq);
  else if (!r->note || strlen(r->note) != q->note_size)
    snprintf(why, wl, "seq %u: note of %zu bytes for %u", q->seq, r->note ? strlen(r->note) : 0,
             q->note_size);
  else if (r->after != -(int64_t)q->seq * 1000003)
    snprintf(why, wl, "seq %u: after differs", q->seq);
  else
    for (size_t i = 0; i < q->note_size; i++)
      if (r->note[i] != letter(i, q->seq)) {
        snprintf(why, wl, "seq %u: note byte %zu differs", q->seq, i);
        break;
      }
}

static Ltest__BigRequest big_request(uint32_t seq, uint32_t size, uint32_t note_size) {
  Ltest__BigRequest q = LTEST__BIG_REQUEST__INIT;
  q.seq = seq;
  q.size = size;
  q.note_size = note_size;
  return q;
}

/* A blocking Get of q: "" in why when it comes back OK and exactly as built (trailers included)
 * and, when `lent`, received split with its data as the tail block; else what went wrong. No
 * cmocka assertion: worker threads call this too. */
static void get_why(crpc_channel *ch, const Ltest__BigRequest *q, int lent, char *why, size_t wl) {
  int taken0 = tails_now();
  Ltest__BigReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 20000};
  int rc = ltest__large__get__call(ch, q, &resp, &st, &opts);
  why[0] = '\0';
  if (rc != 0)
    snprintf(why, wl, "Get seq %u: %s", q->seq, crpc_err_name(rc));
  else if (st.code != CRPC_STATUS_OK)
    snprintf(why, wl, "Get seq %u (%u bytes): %s: %s", q->seq, q->size, crpc_code_name(st.code),
             st.message ? st.message : "");
  else if (!resp)
    snprintf(why, wl, "Get seq %u: OK without a response", q->seq);
  else
    check_big(resp, q, why, wl);
  if (!why[0] && st.trailers_count != (q->trailer_size ? 2u : 0u))
    snprintf(why, wl, "Get seq %u: %zu trailers", q->seq, st.trailers_count);
  if (!why[0] && q->trailer_size) {
    const crpc_metadata *pad = &st.trailers[0], *tag = &st.trailers[1];
    int bad = strcmp(pad->key, "pad") != 0 || pad->value_len != q->trailer_size ||
              strcmp(tag->key, "tag-bin") != 0 || tag->value_len != 3 ||
              memcmp(tag->value, "\0\1\2", 3) != 0;
    for (size_t i = 0; !bad && i < q->trailer_size; i++)
      bad = pad->value[i] != letter(i, q->seq + 3);
    if (bad) snprintf(why, wl, "Get seq %u: trailers differ", q->seq);
  }
  int taken = tails_now() - taken0;
  if (!why[0] && lent && taken != 1)
    snprintf(why, wl, "Get seq %u (%u bytes): %d tails lent, expected 1", q->seq, q->size, taken);
  /* the field is the block the tail was received into: the caller's now */
  if (!why[0] && lent && (uintptr_t)resp->data.data != last_tail_now())
    snprintf(why, wl, "Get seq %u: the data is not the block received split", q->seq);
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL); /* ASan/LSan: all, nothing else */
  crpc_status_reset(&st);
}

static void blocking_get(crpc_channel *ch, const Ltest__BigRequest *q, int lent) {
  char why[200];
  get_why(ch, q, lent, why, sizeof why);
  if (why[0]) fail_msg("%s", why);
}

/* Blocking Get of 1 MiB and 8 MiB (twice each, and 64 KiB, which may or may not be split): every
 * byte checked, the data the received block itself. */
static void split_blocking(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch = open_channel(NULL, srv);
  static const uint32_t lens[] = {MIB, 8 * MIB, MIB + 1, 8 * MIB - 3, 64 * KIB};
  int splits0 = splits_now();
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    Ltest__BigRequest q = big_request((uint32_t)(100 + k), lens[k], NOTE_SMALL);
    blocking_get(ch, &q, lens[k] >= MIB);
  }
  assert_true(splits_now() - splits0 >= 4);
  /* trailing metadata in the STATUS before the message (its general layout) */
  Ltest__BigRequest q = big_request(110, 2 * MIB, NOTE_SMALL);
  q.trailer_size = 4000;
  blocking_get(ch, &q, 1);
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(stop_server(srv), 6);
}

typedef struct gworker {
  crpc_channel *ch;
  int index;
  char why[200];
  uv_thread_t thread;
} gworker;

static void gworker_run(void *arg) {
  gworker *w = arg;
  for (uint32_t i = 0; i < 3 && !w->why[0]; i++) {
    Ltest__BigRequest q = big_request(2000 + (uint32_t)w->index * 10 + i,
                                      MIB + (uint32_t)w->index * 333333u + i, NOTE_SMALL);
    get_why(w->ch, &q, 0, w->why, sizeof w->why); /* the counters are shared: checked in total */
  }
}

/* Four threads at once on one blocking channel. */
static void split_blocking_threads(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch = open_channel(NULL, srv);
  int taken0 = tails_now();
  gworker ws[4];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < 4; i++) {
    ws[i].ch = ch;
    ws[i].index = i;
    assert_int_equal(uv_thread_create(&ws[i].thread, gworker_run, &ws[i]), 0);
  }
  for (int i = 0; i < 4; i++) uv_thread_join(&ws[i].thread);
  for (int i = 0; i < 4; i++)
    if (ws[i].why[0]) fail_msg("thread %d: %s", i, ws[i].why);
  assert_int_equal(tails_now() - taken0, 12);
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(stop_server(srv), 12);
}

typedef struct gcall {
  Ltest__BigRequest q;
  int completions;
  int ok;
  char why[200];
} gcall;

static void gcall_done(const crpc_status *st, const Ltest__BigReply *resp, void *ud) {
  gcall *c = ud;
  c->completions++;
  if (st->code != CRPC_STATUS_OK)
    snprintf(c->why, sizeof c->why, "%s: %s", crpc_code_name(st->code),
             st->message ? st->message : "");
  else if (!resp)
    snprintf(c->why, sizeof c->why, "OK without a response");
  else {
    check_big(resp, &c->q, c->why, sizeof c->why);
    c->ok = !c->why[0];
  }
}

static int gcalls_done(void *arg) {
  gcall *c = arg;
  for (int i = 0; i < 12; i++)
    if (!c[i].completions) return 0;
  return 1;
}

/* Async Gets, 12 in flight: the tail goes to the call's arena. */
static void split_async(void **state) {
  lserver *srv = start_server(state);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel(&loop, srv);
  static const uint32_t lens[] = {MIB, 100, 3 * MIB + 5, 200 * KIB, 64 * KIB, 2 * MIB};
  gcall calls[12];
  memset(calls, 0, sizeof calls);
  int taken0 = tails_now(), large = 0;
  for (int i = 0; i < 12; i++) {
    calls[i].q = big_request(3000 + (uint32_t)i, lens[i % 6], NOTE_SMALL);
    large += lens[i % 6] >= 200 * KIB;
    crpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(
        ltest__large__get__start(ch, &calls[i].q, &opts, gcall_done, &calls[i], NULL), 0);
  }
  if (!itest_run_until(&loop, gcalls_done, calls, 20000)) fail_msg("calls still open after 20 s");
  for (int i = 0; i < 12; i++) {
    assert_int_equal(calls[i].completions, 1);
    if (!calls[i].ok) fail_msg("call %d (%u bytes): %s", i, calls[i].q.size, calls[i].why);
  }
  int taken = tails_now() - taken0;
  if (taken < large) fail_msg("%d tails lent for %d large responses", taken, large);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  assert_int_equal(stop_server(srv), 12);
}

/* A blocking call of `method` (output type `out`), OK expected; the response is returned for
 * the caller to check and free with protobuf_c_message_free_unpacked(resp, NULL). */
static ProtobufCMessage *blocking_ok(crpc_channel *ch, const crpc_method_desc *method,
                                     const Ltest__BigRequest *q) {
  ProtobufCMessage *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 20000};
  int rc = crpc_channel_unary(ch, method, &q->base, &resp, &st, &opts);
  if (rc != 0) fail_msg("%s seq %u: %s", method->full_name, q->seq, crpc_err_name(rc));
  if (st.code != CRPC_STATUS_OK)
    fail_msg("%s seq %u: %s: %s", method->full_name, q->seq, crpc_code_name(st.code),
             st.message ? st.message : "");
  assert_non_null(resp);
  assert_ptr_equal(resp->descriptor, method->output);
  crpc_status_reset(&st);
  return resp;
}

/* Large responses that must not be lent: a string, a repeated bytes field, the bytes field twice
 * (the later value wins, as protobuf-c decides), a rest past 16 KiB. They arrive as before. */
static void split_not_qualifying(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch = open_channel(NULL, srv);
  int taken0 = tails_now();
  char why[200];
  /* a large string */
  Ltest__BigRequest q = big_request(4000, 2 * MIB, NOTE_SMALL);
  Ltest__TextReply *t = (Ltest__TextReply *)blocking_ok(ch, LTEST__LARGE__GET_TEXT__METHOD, &q);
  assert_int_equal(t->seq, q.seq);
  assert_non_null(t->text);
  assert_int_equal(strlen(t->text), q.size);
  for (size_t i = 0; i < q.size; i += 4093) assert_int_equal(t->text[i], letter(i, q.seq + 7));
  assert_int_equal(t->text[q.size - 1], letter(q.size - 1, q.seq + 7));
  protobuf_c_message_free_unpacked(&t->base, NULL);
  /* the rest too large */
  q = big_request(4001, MIB, NOTE_LARGE);
  blocking_get(ch, &q, 0);
  /* a repeated bytes field, the large value last and first */
  crpc_method_desc many_as_big = *LTEST__LARGE__GET_MANY__METHOD;
  many_as_big.output = &ltest__big_reply__descriptor;
  for (int first = 0; first < 2; first++) {
    q = big_request(4002 + (uint32_t)first, MIB, NOTE_SMALL);
    q.chunks = 3;
    q.big_first = first;
    Ltest__ManyReply *m = (Ltest__ManyReply *)blocking_ok(ch, LTEST__LARGE__GET_MANY__METHOD, &q);
    assert_int_equal(m->n_data, 3);
    for (unsigned k = 0; k < 3; k++) {
      int big = first ? k == 0 : k == 2;
      size_t n = big ? q.size : SMALL_CHUNK;
      assert_int_equal(m->data[k].len, n);
      assert_int_equal(mismatch(m->data[k].data, n, big ? q.seq : q.seq + 1 + k), n);
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* ... the same bytes decoded as a BigReply: `data` twice, the last value kept */
    Ltest__BigReply *b = (Ltest__BigReply *)blocking_ok(ch, &many_as_big, &q);
    Ltest__BigRequest last = q;
    if (first) {
      size_t bad;
      assert_int_equal(b->data.len, SMALL_CHUNK);
      if ((bad = mismatch(b->data.data, SMALL_CHUNK, q.seq + 1 + 2)) != SMALL_CHUNK)
        fail_msg("field twice: byte %zu of the last value differs", bad);
      /* the other fields as usual: check them with the data swapped for the expected one */
      last.size = (uint32_t)b->data.len;
      ProtobufCBinaryData keep = b->data;
      uint8_t *want = malloc(SMALL_CHUNK);
      assert_non_null(want);
      fill(want, SMALL_CHUNK, q.seq);
      b->data.data = want;
      check_big(b, &last, why, sizeof why);
      b->data = keep;
      free(want);
    } else {
      check_big(b, &last, why, sizeof why);
    }
    if (why[0]) fail_msg("field twice: %s", why);
    protobuf_c_message_free_unpacked(&b->base, NULL);
  }
  if (tails_now() != taken0)
    fail_msg("%d tails lent for responses that do not qualify", tails_now() - taken0);
  /* and the channel goes on lending */
  q = big_request(4010, MIB, NOTE_SMALL);
  blocking_get(ch, &q, 1);
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(stop_server(srv), 7);
}

typedef struct bcall {
  int completions;
  crpc_code code;
  int has_response;
} bcall;

static void bcall_done(crpc_call *call, const crpc_status *st, const ProtobufCMessage *resp,
                       void *ud) {
  bcall *c = ud;
  (void)call;
  c->completions++;
  c->code = st->code;
  c->has_response = resp != NULL;
}

static int bcall_completed(void *arg) { return ((bcall *)arg)->completions > 0; }

/* The fields after the large value do not decode as the client's type: INTERNAL, nothing lent
 * or leaked, and the connection serves the next call (blocking and async). */
static void split_malformed(void **state) {
  lserver *srv = start_server(state);
  crpc_method_desc bad_as_big = *LTEST__LARGE__GET_BAD__METHOD;
  bad_as_big.output = &ltest__big_reply__descriptor;
  crpc_channel *ch = open_channel(NULL, srv);
  int taken0 = tails_now(), splits0 = splits_now();
  for (uint32_t i = 0; i < 2; i++) {
    Ltest__BigRequest q = big_request(5000 + i, i ? 8 * MIB : MIB, NOTE_SMALL);
    ProtobufCMessage *resp = NULL;
    crpc_status st = {0};
    crpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(crpc_channel_unary(ch, &bad_as_big, &q.base, &resp, &st, &opts), 0);
    if (st.code != CRPC_STATUS_INTERNAL)
      fail_msg("a malformed response: %s: %s", crpc_code_name(st.code),
               st.message ? st.message : "");
    assert_null(resp);
    crpc_status_reset(&st);
  }
  assert_int_equal(tails_now(), taken0);
  assert_true(splits_now() > splits0); /* split, then refused whole */
  /* the same replies as their own type: fine, and lent */
  Ltest__BigRequest q = big_request(5002, MIB, NOTE_SMALL);
  Ltest__BadReply *b = (Ltest__BadReply *)blocking_ok(ch, LTEST__LARGE__GET_BAD__METHOD, &q);
  assert_int_equal(b->data.len, MIB);
  assert_int_equal(mismatch(b->data.data, MIB, q.seq), MIB);
  assert_int_equal(b->after.len, 3);
  assert_memory_equal(b->after.data, "xyz", 3);
  assert_ptr_equal((uintptr_t)b->data.data, last_tail_now());
  protobuf_c_message_free_unpacked(&b->base, NULL);
  q = big_request(5003, MIB, NOTE_SMALL);
  blocking_get(ch, &q, 1);
  crpc_channel_close(ch, NULL, NULL);

  /* async: the arena path */
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  ch = open_channel(&loop, srv);
  bcall c = {0};
  q = big_request(5004, 2 * MIB, NOTE_SMALL);
  crpc_call_opts opts = {.timeout_ms = 20000};
  assert_int_equal(
      crpc_channel_unary_async(ch, &bad_as_big, &q.base, &opts, bcall_done, &c, NULL), 0);
  assert_true(itest_run_until(&loop, bcall_completed, &c, 20000));
  assert_int_equal(c.completions, 1);
  assert_int_equal(c.code, CRPC_STATUS_INTERNAL);
  assert_false(c.has_response);
  gcall g;
  memset(&g, 0, sizeof g);
  g.q = big_request(5005, MIB, NOTE_SMALL);
  assert_int_equal(ltest__large__get__start(ch, &g.q, &opts, gcall_done, &g, NULL), 0);
  assert_true(itest_run_until(&loop, bcall_completed, &g.completions, 20000));
  assert_int_equal(g.completions, 1);
  if (!g.ok) fail_msg("after a malformed response: %s", g.why);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  assert_int_equal(stop_server(srv), 6);
}

static int split_seen(void *arg) {
  const int *before = arg;
  return splits_now() != *before;
}

typedef struct split_watch {
  int splits0;
  gcall *c;
} split_watch;

static int split_or_done(void *arg) {
  split_watch *w = arg;
  return splits_now() != w->splits0 || w->c->completions > 0;
}

/* A call cancelled while its response is being received split: CANCELLED, once; the rest of the
 * frame is dropped with its tail (LSan) and the connection goes on (the next call behind it). */
static void split_cancel_mid_frame(void **state) {
  lserver *srv = start_server(state);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel(&loop, srv);
  int cancelled_mid = 0;
  for (uint32_t round = 0; round < 4; round++) {
    gcall c, next;
    memset(&c, 0, sizeof c);
    memset(&next, 0, sizeof next);
    c.q = big_request(7000 + round * 2, 8 * MIB, NOTE_SMALL);
    next.q = big_request(7001 + round * 2, MIB, NOTE_SMALL);
    crpc_call_opts opts = {.timeout_ms = 20000};
    crpc_call *call = NULL;
    split_watch w = {splits_now(), &c};
    int taken0 = tails_now();
    assert_int_equal(ltest__large__get__start(ch, &c.q, &opts, gcall_done, &c, &call), 0);
    assert_int_equal(ltest__large__get__start(ch, &next.q, &opts, gcall_done, &next, NULL), 0);
    assert_true(itest_run_until(&loop, split_or_done, &w, 20000));
    if (!c.completions) {
      crpc_call_cancel(call);
      assert_int_equal(c.completions, 1);
      assert_false(c.ok);
      cancelled_mid++;
    }
    assert_true(itest_run_until(&loop, bcall_completed, &next.completions, 20000));
    assert_int_equal(next.completions, 1);
    if (!next.ok) fail_msg("the call behind a cancelled one: %s", next.why);
    assert_int_equal(c.completions, 1);
    /* only the second response was lent (unless the first completed before the cancel) */
    assert_int_equal(tails_now() - taken0, c.ok ? 2 : 1);
  }
  if (!cancelled_mid) fail_msg("no call was still receiving its response when cancelled");
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  assert_int_equal(stop_server(srv), 8);
}

typedef struct closing {
  crpc_channel *ch;
  gcall *c;
  int closed;
} closing;

static void closed_cb(void *ud) { ((closing *)ud)->closed++; }

static void close_in_done(const crpc_status *st, const Ltest__BigReply *resp, void *ud) {
  closing *k = ud;
  gcall_done(st, resp, k->c);
  crpc_channel_close(k->ch, closed_cb, k); /* with the next response split and under way */
}

static int closed_once(void *arg) { return ((closing *)arg)->closed > 0; }

/* The channel closed from the completion of a split response (lent to the arena), and closed
 * while another response is still arriving split: every call completes once, nothing leaks. */
static void split_close(void **state) {
  lserver *srv = start_server(state);
  for (int mid = 0; mid < 2; mid++) {
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    crpc_channel *ch = open_channel(&loop, srv);
    gcall a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.q = big_request(8000 + (uint32_t)mid * 2, mid ? 8 * MIB : 2 * MIB, NOTE_SMALL);
    b.q = big_request(8001 + (uint32_t)mid * 2, 8 * MIB, NOTE_SMALL);
    closing k = {ch, &a, 0};
    crpc_call_opts opts = {.timeout_ms = 20000};
    int splits0 = splits_now();
    if (mid) { /* close once the first response is under way, split */
      assert_int_equal(ltest__large__get__start(ch, &a.q, &opts, gcall_done, &a, NULL), 0);
      assert_true(itest_run_until(&loop, split_seen, &splits0, 20000));
      crpc_channel_close(ch, closed_cb, &k);
    } else { /* close from the first call's completion, the second's response behind it */
      assert_int_equal(ltest__large__get__start(ch, &a.q, &opts, close_in_done, &k, NULL), 0);
      assert_int_equal(ltest__large__get__start(ch, &b.q, &opts, gcall_done, &b, NULL), 0);
    }
    assert_true(itest_run_until(&loop, closed_once, &k, 20000));
    itest_run_for(&loop, 5);
    assert_int_equal(k.closed, 1);
    assert_int_equal(a.completions, 1);
    if (!mid) {
      if (!a.ok) fail_msg("the call whose completion closed the channel: %s", a.why);
      assert_int_equal(b.completions, 1);
      assert_false(b.ok); /* the channel closed before its response */
    }
    itest_loop_finish(&loop);
  }
  stop_server(srv);
}

/* The size of BigRequest.size that makes the BigReply exactly msg bytes. */
static uint32_t size_for_reply(size_t msg, uint32_t seq) {
  for (uint32_t n = msg > 400 ? (uint32_t)(msg - 400) : 0; n <= msg; n++) {
    Ltest__BigRequest q = big_request(seq, n, NOTE_SMALL);
    Ltest__BigReply r;
    reply_parts p;
    parts_init(&p, &q);
    ltest__big_reply__init(&r);
    r.seq = q.seq;
    r.name = p.name;
    r.data.len = n; /* the size is all that counts */
    r.n_nums = 3;
    r.nums = p.nums;
    r.trailer = &p.trailer;
    r.note = p.note;
    r.after = -(int64_t)q.seq * 1000003;
    size_t got = ltest__big_reply__get_packed_size(&r);
    parts_free(&p);
    if (got == msg) return n;
  }
  fail_msg("no size makes a %zu-byte reply", msg);
  return 0;
}

/* A split response is held to the client's MAX_RECV_MESSAGE_SIZE as a whole (head and tail): at
 * the limit it is lent, one byte more fails RESOURCE_EXHAUSTED with nothing lent or leaked. */
static void split_max_recv(void **state) {
  lserver *srv = start_server(state);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, srv->endpoint), 0);
  ch->io.split_stats = &split_stats;
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, MIB), 0);
  Ltest__BigRequest q = big_request(6000, size_for_reply(MIB, 6000), NOTE_SMALL);
  blocking_get(ch, &q, 1);
  int taken0 = tails_now(), splits0 = splits_now();
  q = big_request(6001, size_for_reply(MIB + 1, 6001), NOTE_SMALL);
  Ltest__BigReply *resp = NULL;
  crpc_status st = {0};
  crpc_call_opts opts = {.timeout_ms = 20000};
  assert_int_equal(ltest__large__get__call(ch, &q, &resp, &st, &opts), 0);
  if (st.code != CRPC_STATUS_RESOURCE_EXHAUSTED)
    fail_msg("a reply of MAX_RECV_MESSAGE_SIZE + 1 bytes: %s: %s", crpc_code_name(st.code),
             st.message ? st.message : "");
  assert_null(resp);
  crpc_status_reset(&st);
  assert_int_equal(splits_now() - splits0, 1);
  assert_int_equal(tails_now(), taken0);
  q = big_request(6002, MIB / 2, NOTE_SMALL); /* the connection goes on */
  blocking_get(ch, &q, 1);
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(stop_server(srv), 3);
}

/* ---- backpressure ------------------------------------------------------------------------------
 * MAX_WRITE_BUFFER at its minimum on both sides, 32 large echo calls started at once. A server
 * stops reading while more than that is queued for a peer; a channel keeps reading (the responses
 * are what lets the server go on) and refuses new calls RESOURCE_EXHAUSTED at start instead.
 * Were the channel to stop reading too, both would wait for each other until the stall timeout
 * reset the connection (UNAVAILABLE) or the deadlines passed. */

#define MIN_WRITE 65536
#define BP_CALLS 32

typedef struct bpcall {
  uint32_t seq;
  size_t len;      /* of the response: the request's (an echo), or reply_size bytes of 'r' */
  int filler;      /* the response is reply_size bytes of 'r' */
  int started;     /* start returned: the callback must not run before */
  int completions;
  crpc_code code;
  int ok;
  char why[200];
} bpcall;

static void bpcall_done(const crpc_status *st, const Itest__EchoReply *resp, void *ud) {
  bpcall *c = ud;
  c->completions++;
  c->code = st->code;
  size_t bad;
  if (!c->started)
    snprintf(c->why, sizeof c->why, "completed before its start returned");
  else if (st->code == CRPC_STATUS_RESOURCE_EXHAUSTED) {
    if (!st->message || !strstr(st->message, "MAX_WRITE_BUFFER"))
      snprintf(c->why, sizeof c->why, "RESOURCE_EXHAUSTED, but not at start: %s",
               st->message ? st->message : "");
  } else if (st->code != CRPC_STATUS_OK)
    snprintf(c->why, sizeof c->why, "%s: %s", crpc_code_name(st->code),
             st->message ? st->message : "");
  else if (!resp)
    snprintf(c->why, sizeof c->why, "OK without a response");
  else if (resp->seq != c->seq)
    snprintf(c->why, sizeof c->why, "response for seq %u", resp->seq);
  else if (resp->payload.len != c->len)
    snprintf(c->why, sizeof c->why, "%zu bytes back for %zu", resp->payload.len, c->len);
  else if (!c->filler && (bad = mismatch(resp->payload.data, c->len, c->seq)) != c->len)
    snprintf(c->why, sizeof c->why, "byte %zu of %zu differs", bad, c->len);
  else {
    for (size_t i = 0; c->filler && i < c->len; i++)
      if (resp->payload.data[i] != 'r') {
        snprintf(c->why, sizeof c->why, "byte %zu of %zu differs", i, c->len);
        return;
      }
    c->ok = 1;
  }
}

static int bp_all_done(void *arg) {
  bpcall *c = arg;
  for (int i = 0; i < BP_CALLS; i++)
    if (!c[i].completions) return 0;
  return 1;
}

/* Starts BP_CALLS echo calls of len bytes at once (answered with reply_size bytes instead when
 * that is not 0) and checks how each ended; returns how many were answered OK. */
static int bp_batch(uv_loop_t *loop, crpc_channel *ch, size_t len, size_t reply_size,
                    uint32_t base) {
  bpcall *calls = calloc(BP_CALLS, sizeof *calls);
  assert_non_null(calls);
  uint8_t *data = malloc(len);
  assert_non_null(data);
  for (int i = 0; i < BP_CALLS; i++) {
    calls[i].seq = base + (uint32_t)i;
    calls[i].len = reply_size ? reply_size : len;
    calls[i].filler = reply_size != 0;
    fill(data, len, calls[i].seq);
    Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
    req.seq = calls[i].seq;
    req.reply_size = (uint32_t)reply_size;
    req.payload.data = data;
    req.payload.len = len;
    crpc_call_opts opts = {.timeout_ms = 20000};
    assert_int_equal(itest__test__echo__start(ch, &req, &opts, bpcall_done, &calls[i], NULL), 0);
    calls[i].started = 1;
  }
  free(data);
  if (!itest_run_until(loop, bp_all_done, calls, 25000))
    fail_msg("%zu bytes: calls still open after 25 s (both sides waiting for each other?)", len);
  int ok = 0, refused = 0;
  for (int i = 0; i < BP_CALLS; i++) {
    if (calls[i].completions != 1)
      fail_msg("%zu bytes: call %d completed %d times", len, i, calls[i].completions);
    if (calls[i].why[0])
      fail_msg("%zu bytes: call %d (seq %u): %s", len, i, calls[i].seq, calls[i].why);
    ok += calls[i].ok;
    refused += calls[i].code == CRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  assert_int_equal(ok + refused, BP_CALLS);
  print_message("%zu bytes: %d answered, %d refused at start\n", len, ok, refused);
  if (ok == 0) fail_msg("%zu bytes: every call was refused", len);
  free(calls);
  return ok;
}

static void backpressure(void **state, size_t len, size_t reply_size) {
  lserver *srv = start_server_w(state, MIN_WRITE);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  crpc_channel *ch = open_channel_w(&loop, srv, MIN_WRITE);
  /* While the channel connects nothing can be written: the first request alone is over
   * MAX_WRITE_BUFFER, so every other call must be refused (checked last, so that the rounds on
   * the connection run whatever happens here). */
  int answered = 0, while_connecting = bp_batch(&loop, ch, len, reply_size, 100);
  answered += while_connecting;
  /* connected, twice */
  for (uint32_t round = 1; round < 3; round++)
    answered += bp_batch(&loop, ch, len, reply_size, 100 * (round + 1));
  /* afterwards: a call of the same size goes through */
  bpcall after;
  memset(&after, 0, sizeof after);
  after.seq = 9999;
  after.len = len;
  uint8_t *data = malloc(len);
  assert_non_null(data);
  fill(data, len, after.seq);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.seq = after.seq;
  req.payload.data = data;
  req.payload.len = len;
  crpc_call_opts opts = {.timeout_ms = 20000};
  assert_int_equal(itest__test__echo__start(ch, &req, &opts, bpcall_done, &after, NULL), 0);
  after.started = 1;
  free(data);
  assert_true(itest_run_until(&loop, bcall_completed, &after.completions, 20000));
  assert_int_equal(after.completions, 1);
  if (!after.ok)
    fail_msg("the call after: %s", after.why[0] ? after.why : crpc_code_name(after.code));
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
  /* the server saw exactly the calls that were not refused at start */
  assert_int_equal(stop_server(srv), answered + 1);
  if (while_connecting != 1)
    fail_msg("%zu bytes while connecting: %d calls answered, expected the first only", len,
             while_connecting);
}

static void backpressure_256k(void **state) { backpressure(state, 256 * KIB, 0); }
static void backpressure_2m(void **state) { backpressure(state, 2 * MIB, 0); }
/* Requests of 256 KiB answered with 4 MiB: several requests are still queued when the first
 * answers fill the server's queue, which stalled both sides every time before channels kept
 * reading (the echoes above only now and then). */
static void backpressure_big_replies(void **state) { backpressure(state, 256 * KIB, 4 * MIB); }

#define CASES_REST(t)                                                                           \
  ITEST_CASE_(blocking_sizes, t), ITEST_CASE_(blocking_threads, t),                          \
      ITEST_CASE_(async_delayed_replies, t), ITEST_CASE_(async_mixed_sizes, t)
#define CASES_IN_FLIGHT(t) ITEST_CASE_(async_in_flight, t)
#define CASES_SPLIT(t)                                                                          \
  ITEST_CASE_(split_blocking, t), ITEST_CASE_(split_blocking_threads, t),                    \
      ITEST_CASE_(split_async, t), ITEST_CASE_(split_not_qualifying, t),                     \
      ITEST_CASE_(split_malformed, t), ITEST_CASE_(split_max_recv, t),                      \
      ITEST_CASE_(split_cancel_mid_frame, t), ITEST_CASE_(split_close, t)
#define CASES_BACKPRESSURE(t)                                                                   \
  ITEST_CASE_(backpressure_256k, t), ITEST_CASE_(backpressure_2m, t),                        \
      ITEST_CASE_(backpressure_big_replies, t)

/* usage: calls_large_messages [tcp4|unix [rest|in_flight|split|backpressure]]: one
 * transport, and one part of the cases (ctest runs each part on its own, to keep each short);
 * everything without arguments. */
int main(int argc, char **argv) {
  const struct CMUnitTest tcp4_rest[] = {CASES_REST(tcp4)}, unix_rest[] = {CASES_REST(unix)};
  const struct CMUnitTest tcp4_in_flight[] = {CASES_IN_FLIGHT(tcp4)},
                          unix_in_flight[] = {CASES_IN_FLIGHT(unix)};
  const struct CMUnitTest tcp4_split[] = {CASES_SPLIT(tcp4)}, unix_split[] = {CASES_SPLIT(unix)};
  const struct CMUnitTest tcp4_bp[] = {CASES_BACKPRESSURE(tcp4)},
                          unix_bp[] = {CASES_BACKPRESSURE(unix)};
  static const char *const parts[] = {"rest", "in_flight", "split", "backpressure"};
  const char *only = argc > 1 ? argv[1] : NULL;
  const char *part = argc > 2 ? argv[2] : NULL;
  int p = -1;
  for (int i = 0; part && i < 4; i++)
    if (strcmp(part, parts[i]) == 0) p = i;
  if ((only && strcmp(only, "tcp4") != 0 && strcmp(only, "unix") != 0) || (part && p < 0)) {
    fprintf(stderr, "usage: %s [tcp4|unix [rest|in_flight|split|backpressure]]\n", argv[0]);
    return 2;
  }
  int failed = 0;
#define RUN_PART(i, tr, arr)                                                                    \
  if ((!only || strcmp(only, tr) == 0) && (p < 0 || p == (i)))                                 \
    failed += cmocka_run_group_tests_name(tr "/" #arr, arr, NULL, NULL);
  RUN_PART(0, "tcp4", tcp4_rest)
  RUN_PART(1, "tcp4", tcp4_in_flight)
  RUN_PART(2, "tcp4", tcp4_split)
  RUN_PART(3, "tcp4", tcp4_bp)
  RUN_PART(0, "unix", unix_rest)
  RUN_PART(1, "unix", unix_in_flight)
  RUN_PART(2, "unix", unix_split)
  RUN_PART(3, "unix", unix_bp)
#undef RUN_PART
  return failed;
}
