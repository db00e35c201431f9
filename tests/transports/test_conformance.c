/* The transport conformance suite: what every transport must do, written once and run once per
 * transport. The listen endpoint is the program's argument (CMakeLists.txt registers one ctest
 * entry per transport):
 *   tcp://127.0.0.1:0   TCP over IPv4 (the port the server picks)
 *   tcp://[::1]:0       TCP over IPv6; every case is SKIPPED, not passed, where ::1 cannot be bound
 *   unix:               a Unix domain socket, a fresh path in a private temporary directory
 *   unix:@              a Linux abstract Unix socket, a fresh name
 * Each case gets a fresh loop server of the test service (support/stream.h) on that transport and
 * a loop channel to it, and checks: a unary call, each streaming shape, large messages (1 MiB each
 * way), many calls in flight at once, a deadline, a cancel, a graceful shutdown as the client sees
 * it, metadata and trailers, a peer closing in the middle of a call (either side), and a refused
 * connection. Nothing here knows which transport it runs on. */
#include "stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpeer.h"

#define WAIT_MS 20000 /* generous: a slow, shared machine must not fail a correct runtime */
#define LARGE (1 << 20)
#define MANY 256

static const char *listen_arg;   /* argv[1] */
static const char *unavailable;  /* why this transport cannot run here, or NULL */
static char tmpdir[64];          /* unix: the sockets' directory */
static int serial;               /* fresh names per case */

/* The endpoint a case's server listens on. */
static void make_listen(char *buf, size_t len)
{
  serial++;
  if (strcmp(listen_arg, "unix:") == 0)
    snprintf(buf, len, "unix:%s/s%d.sock", tmpdir, serial);
  else if (strcmp(listen_arg, "unix:@") == 0)
    snprintf(buf, len, "unix:@crpc-conformance-%ld-%d", (long)getpid(), serial);
  else
    snprintf(buf, len, "%s", listen_arg);
}

static int setup(void **state)
{
  st_env *e;
  char listen[128];

  *state = NULL;
  if (unavailable != NULL)
    return 0;
  e = calloc(1, sizeof(*e));
  assert_non_null(e);
  make_listen(listen, sizeof(listen));
  st_env_start_at(e, listen);
  *state = e;
  return 0;
}

static int teardown(void **state)
{
  if (*state != NULL) {
    st_env_finish(*state);
    free(*state);
  }
  return 0;
}

/* First line of every case: a transport this machine cannot run is SKIPPED, with the reason. */
static st_env *env_of(void **state)
{
  if (unavailable != NULL) {
    print_message("%s: %s\n", listen_arg, unavailable);
    skip();
  }
  return *state;
}

/* ---- Unary calls --------------------------------------------------------------------------- */

#define MAX_TRAILERS 4

typedef struct unary_rec {
  int done;
  crpc_code code;
  char message[256];
  int has_response;
  int payload_len;
  int payload_ok;
  size_t ntrailers;
  struct {
    char key[64];
    uint8_t value[64];
    size_t value_len;
  } trailers[MAX_TRAILERS];
} unary_rec;

static void unary_done(const crpc_status *st, const Itest__OutputResponse *resp, void *ud)
{
  unary_rec *r = ud;

  r->done++;
  r->code = st->code;
  snprintf(r->message, sizeof(r->message), "%s", st->message ? st->message : "");
  r->ntrailers = st->trailers_count;
  for (size_t i = 0; i < st->trailers_count && i < MAX_TRAILERS; i++) {
    snprintf(r->trailers[i].key, sizeof(r->trailers[i].key), "%s", st->trailers[i].key);
    assert_true(st->trailers[i].value_len <= sizeof(r->trailers[i].value));
    memcpy(r->trailers[i].value, st->trailers[i].value, st->trailers[i].value_len);
    r->trailers[i].value_len = st->trailers[i].value_len;
  }
  if (resp != NULL) {
    r->has_response = 1;
    r->payload_len = resp->payload != NULL ? (int)resp->payload->data.len : 0;
    r->payload_ok = st_payload_ok(resp->payload, r->payload_len);
  }
}

static int unary_is_done(void *arg) { return ((unary_rec *)arg)->done > 0; }

/* Starts UnaryCall asking for a response of `size` bytes (size < 0: echo the request payload's
 * size) with a request payload of payload bytes. */
static void unary_start(st_env *e, int size, int payload, int hold, const crpc_call_opts *o,
                        unary_rec *r, crpc_call **call)
{
  st_outreq req;

  memset(r, 0, sizeof(*r));
  st_outreq_init(&req, &size, size >= 0 ? 1 : 0, payload);
  req.req.hold = hold;
  assert_int_equal(itest__test__unary_call__start(e->ch, &req.req, o, unary_done, r, call), 0);
  st_outreq_free(&req);
}

static void unary_wait(st_env *e, unary_rec *r)
{
  if (!st_run_until(e, unary_is_done, r, WAIT_MS))
    fail_msg("unary call not completed after %d ms", WAIT_MS);
  assert_int_equal(r->done, 1);
}

static void unary_call(void **state)
{
  st_env *e = env_of(state);
  static const int sizes[] = {0, 1, 100, 4000};

  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    unary_rec r;

    unary_start(e, sizes[i], 7, 0, NULL, &r, NULL);
    unary_wait(e, &r);
    assert_int_equal(r.code, CRPC_STATUS_OK);
    assert_true(r.has_response);
    assert_int_equal(r.payload_len, sizes[i]);
    assert_true(r.payload_ok);
  }
  assert_int_equal(e->counters.started[4], 4);
  assert_int_equal(e->counters.ended_ok, 4);
}

/* ---- Streaming shapes ---------------------------------------------------------------------- */

static const Itest__Test__StreamingOutputHandlers output_handlers = {st_rec_out, st_rec_writable,
                                                                     st_rec_done, 1};
static const Itest__Test__StreamingInputHandlers input_handlers = {st_rec_in, st_rec_writable,
                                                                   st_rec_done, 0};
static const Itest__Test__FullDuplexHandlers duplex_handlers = {st_rec_out, st_rec_writable,
                                                                st_rec_done, 1};

static void server_streaming_sized(st_env *e, const int *sizes, size_t n)
{
  st_outreq req;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__streaming_output__stream(e->ch, NULL, &output_handlers, &r, &r.s),
                   0);
  st_outreq_init(&req, sizes, n, 0);
  assert_int_equal(itest__test__streaming_output__write(r.s, &req.req), 0);
  st_outreq_free(&req);
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.nread, (int)n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r.sizes[i], sizes[i]);
    assert_int_equal(r.seqs[i], (int)i);
  }
}

static void server_streaming(void **state)
{
  st_env *e = env_of(state);
  static const int sizes[] = {31415, 9, 0, 2653};

  server_streaming_sized(e, sizes, 4);
}

static void client_streaming_sized(st_env *e, const int *sizes, size_t n)
{
  int64_t sum = 0;
  int before = e->counters.requests;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__streaming_input__stream(e->ch, NULL, &input_handlers, &r, &r.s), 0);
  for (size_t i = 0; i < n; i++) {
    st_write_input(e, &r, sizes[i]);
    sum += sizes[i];
  }
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  assert_int_equal(crpc_stream_read(r.s), 0); /* the one response */
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.aggregated, sum);
  assert_int_equal(e->counters.requests - before, (int)n);
}

static void client_streaming(void **state)
{
  st_env *e = env_of(state);
  static const int sizes[] = {27182, 8, 0, 1828};

  client_streaming_sized(e, sizes, 4);
}

static void bidi_streaming(void **state)
{
  st_env *e = env_of(state);
  static const int sizes[] = {31415, 9, 2653, 58979};
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &duplex_handlers, &r, &r.s), 0);
  for (int i = 0; i < 4; i++) { /* ping-pong: each answer before the next request */
    st_write_duplex(e, &r, &sizes[i], 1, 100 * i);
    st_wait_count(e, &r.nread, i + 1, WAIT_MS, "bidi response");
    assert_int_equal(r.sizes[i], sizes[i]);
    assert_int_equal(r.seqs[i], i);
  }
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.nread, 4);
  assert_int_equal(e->counters.requests, 4);
}

/* ---- Large messages ------------------------------------------------------------------------ */

static void large_messages(void **state)
{
  st_env *e = env_of(state);
  static const int sizes[] = {LARGE, 1, LARGE};
  unary_rec r;

  /* 1 MiB each way on a unary call, */
  unary_start(e, -1, LARGE, 0, NULL, &r, NULL);
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.payload_len, LARGE);
  assert_true(r.payload_ok);
  /* then as stream messages, both directions. */
  server_streaming_sized(e, sizes, 3);
  client_streaming_sized(e, sizes, 3);
}

/* ---- Many calls at once -------------------------------------------------------------------- */

typedef struct all_done {
  unary_rec *r;
  int n;
} all_done;

static int pred_all_done(void *arg)
{
  all_done *a = arg;

  for (int i = 0; i < a->n; i++)
    if (a->r[i].done == 0)
      return 0;
  return 1;
}

static void many_concurrent_calls(void **state)
{
  st_env *e = env_of(state);
  unary_rec *r = calloc(MANY, sizeof(*r));
  all_done a = {r, MANY};

  assert_non_null(r);
  /* Every call is started before the loop runs: all MANY are in flight on one connection. */
  for (int i = 0; i < MANY; i++)
    unary_start(e, i * 37, i, 0, NULL, &r[i], NULL);
  if (!st_run_until(e, pred_all_done, &a, WAIT_MS))
    fail_msg("not every call completed after %d ms", WAIT_MS);
  for (int i = 0; i < MANY; i++) {
    assert_int_equal(r[i].done, 1);
    assert_int_equal(r[i].code, CRPC_STATUS_OK);
    assert_int_equal(r[i].payload_len, i * 37);
    assert_true(r[i].payload_ok);
  }
  assert_int_equal(e->counters.started[4], MANY);
  free(r);
}

/* ---- Deadline and cancel ------------------------------------------------------------------- */

static void deadline(void **state)
{
  st_env *e = env_of(state);
  crpc_call_opts o = {.timeout_ms = 200};
  unary_rec r;

  unary_start(e, 10, 0, 1, &o, &r, NULL); /* held: only the deadline ends it */
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_false(r.has_response);
  /* The server's handler saw the deadline pass as a cancel and finished the call. */
  st_wait_count(e, &e->counters.cancels, 1, WAIT_MS, "server-side cancel at the deadline");
  assert_int_equal(e->counters.unary_held, 0);
  st_run_for(e, 20);
  assert_int_equal(r.done, 1);
}

static void cancel(void **state)
{
  st_env *e = env_of(state);
  crpc_call *call = NULL;
  unary_rec r;

  unary_start(e, 10, 0, 1, NULL, &r, &call);
  st_wait_count(e, &e->counters.started[4], 1, WAIT_MS, "held call at the server");
  crpc_call_cancel(call); /* completes the call before it returns */
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  st_wait_count(e, &e->counters.cancels, 1, WAIT_MS, "CANCEL at the server");
  assert_int_equal(e->counters.unary_held, 0);
  st_run_for(e, 20);
  assert_int_equal(r.done, 1);
  /* The connection goes on serving. */
  unary_start(e, 5, 0, 0, NULL, &r, NULL);
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

/* ---- Shutdown, metadata, peers going away -------------------------------------------------- */

static void closed_cb(void *ud) { ((st_env *)ud)->closes++; }

static void server_shutdown_drains(void **state)
{
  st_env *e = env_of(state);
  unary_rec held, late;

  unary_start(e, 10, 0, 1, NULL, &held, NULL);
  st_wait_count(e, &e->counters.unary_held, 1, WAIT_MS, "held call at the server");
  assert_int_equal(crpc_server_shutdown(e->srv, WAIT_MS, closed_cb, e), 0);
  /* A call started during the drain never runs: UNAVAILABLE (refused by GOAWAY, or no listener). */
  unary_start(e, 10, 0, 0, NULL, &late, NULL);
  unary_wait(e, &late);
  assert_int_equal(late.code, CRPC_STATUS_UNAVAILABLE);
  assert_int_equal(e->counters.started[4], 1);
  /* The call in progress runs to completion, then the shutdown finishes. */
  assert_int_equal(held.done, 0);
  st_unary_release(&e->counters);
  unary_wait(e, &held);
  assert_int_equal(held.code, CRPC_STATUS_OK);
  assert_int_equal(held.payload_len, 10);
  st_wait_count(e, &e->closes, 1, WAIT_MS, "shutdown callback");
  e->srv = NULL; /* released by the shutdown */
}

static void metadata_and_trailers(void **state)
{
  st_env *e = env_of(state);
  static const uint8_t bin[] = {0, 1, 2, 0xff, 0};
  crpc_metadata md[2] = {{"x-trace", (const uint8_t *)"abc-123", 7}, {"x-blob-bin", bin, 5}};
  crpc_call_opts o = {.metadata = md, .metadata_count = 2};
  unary_rec r;

  unary_start(e, 3, 0, 0, &o, &r, NULL);
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  /* The server sends what it received back as trailers, in order. */
  assert_int_equal(r.ntrailers, 2);
  for (int i = 0; i < 2; i++) {
    assert_string_equal(r.trailers[i].key, md[i].key);
    assert_int_equal(r.trailers[i].value_len, md[i].value_len);
    assert_memory_equal(r.trailers[i].value, md[i].value, md[i].value_len);
  }
}

typedef struct raw_wait {
  ts_raw *raw;
  const int *value;
  int target;
} raw_wait;

static int pred_raw_count(void *arg)
{
  raw_wait *w = arg;

  ts_raw_pump(w->raw);
  return *w->value >= w->target;
}

static void client_closes_mid_call(void **state)
{
  st_env *e = env_of(state);
  Itest__OutputRequest req = ITEST__OUTPUT_REQUEST__INIT;
  uint8_t msg[16];
  ts_raw raw;
  unary_rec r;

  /* A raw client (rawpeer.h) on the same endpoint starts a held call, then closes. */
  assert_int_equal(ts_raw_connect_endpoint(&raw, e->endpoint, 0), 0);
  ts_raw_send_preface(&raw);
  req.hold = 1;
  assert_true(itest__output_request__get_packed_size(&req) <= sizeof(msg));
  size_t n = itest__output_request__pack(&req, msg);
  ts_raw_send_call(&raw, 1, "itest.Test/UnaryCall", 0, msg, n);
  raw_wait w = {&raw, &e->counters.unary_held, 1};
  assert_true(st_run_until(e, pred_raw_count, &w, WAIT_MS));
  ts_raw_close(&raw);
  /* The server cancels the orphaned call and goes on serving others. */
  st_wait_count(e, &e->counters.cancels, 1, WAIT_MS, "cancel of the orphaned call");
  assert_int_equal(e->counters.unary_held, 0);
  unary_start(e, 5, 0, 0, NULL, &r, NULL);
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

static void server_closes_mid_call(void **state)
{
  st_env *e = env_of(state);
  unary_rec r;
  st_rec s;

  unary_start(e, 10, 0, 1, NULL, &r, NULL);
  st_rec_init(&s, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &duplex_handlers, &s, &s.s), 0);
  st_wait_count(e, &e->counters.unary_held, 1, WAIT_MS, "held call at the server");
  st_wait_count(e, &e->counters.started[2], 1, WAIT_MS, "stream at the server");
  crpc_server_close(e->srv, closed_cb, e);
  e->srv = NULL;
  /* Both calls end exactly once, UNAVAILABLE naming the endpoint, and the server's close
   * completes. */
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(r.message, e->endpoint));
  assert_false(r.has_response);
  st_wait_done(e, &s, WAIT_MS);
  assert_int_equal(s.code, CRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(s.message, e->endpoint));
  st_wait_count(e, &e->closes, 1, WAIT_MS, "server close callback");
  st_run_for(e, 20);
  assert_int_equal(r.done, 1);
  assert_int_equal(s.done, 1);
}

static void connection_refused(void **state)
{
  st_env *e = env_of(state);
  char endpoint[128];
  crpc_channel *ch;
  unary_rec r;
  st_outreq req;
  int size = 1;

  /* The case's own endpoint once its server is gone: nothing listens there any more. */
  snprintf(endpoint, sizeof(endpoint), "%s", e->endpoint);
  crpc_server_close(e->srv, closed_cb, e);
  e->srv = NULL;
  st_wait_count(e, &e->closes, 1, WAIT_MS, "server close callback");
  assert_int_equal(crpc_channel_new(&ch, &e->loop, endpoint), 0);
  memset(&r, 0, sizeof(r));
  st_outreq_init(&req, &size, 1, 0);
  assert_int_equal(itest__test__unary_call__start(ch, &req.req, NULL, unary_done, &r, NULL), 0);
  st_outreq_free(&req);
  unary_wait(e, &r);
  assert_int_equal(r.code, CRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(r.message, endpoint)); /* the message names where it could not connect */
  crpc_channel_close(ch, closed_cb, e);
  st_wait_count(e, &e->closes, 2, WAIT_MS, "channel close callback");
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Whether this machine can listen on the transport: IPv6 loopback may be missing. */
static void probe(void)
{
  if (strncmp(listen_arg, "tcp://[::1]", 11) == 0) {
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
      unavailable = "IPv6 loopback (::1) is not available on this machine: skipped";
    if (fd >= 0)
      close(fd);
  }
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(unary_call, setup, teardown),
      cmocka_unit_test_setup_teardown(server_streaming, setup, teardown),
      cmocka_unit_test_setup_teardown(client_streaming, setup, teardown),
      cmocka_unit_test_setup_teardown(bidi_streaming, setup, teardown),
      cmocka_unit_test_setup_teardown(large_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(many_concurrent_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(server_shutdown_drains, setup, teardown),
      cmocka_unit_test_setup_teardown(metadata_and_trailers, setup, teardown),
      cmocka_unit_test_setup_teardown(client_closes_mid_call, setup, teardown),
      cmocka_unit_test_setup_teardown(server_closes_mid_call, setup, teardown),
      cmocka_unit_test_setup_teardown(connection_refused, setup, teardown),
  };
  int rc;

  if (argc != 2) {
    fprintf(stderr, "usage: %s LISTEN-ENDPOINT (tcp://127.0.0.1:0, tcp://[::1]:0, unix:, unix:@)\n",
            argv[0]);
    return 2;
  }
  listen_arg = argv[1];
  probe();
  if (strcmp(listen_arg, "unix:") == 0) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/crpc-conformance-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
      perror("mkdtemp");
      return 1;
    }
  }
  rc = cmocka_run_group_tests_name(listen_arg, tests, NULL, NULL);
  if (tmpdir[0] != '\0')
    rmdir(tmpdir); /* each server removed its socket file when it closed */
  return rc;
}
