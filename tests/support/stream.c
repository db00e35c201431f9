/* Streaming-test fixture: see stream.h. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Payloads --------------------------------------------------------------------------------- */

static uint8_t pattern_byte(int size, size_t i) { return (uint8_t)((size_t)size * 31u + i); }

uint8_t *st_pattern(int size)
{
  uint8_t *p = malloc(size > 0 ? (size_t)size : 1);

  assert_non_null(p);
  for (size_t i = 0; i < (size_t)size; i++)
    p[i] = pattern_byte(size, i);
  return p;
}

int st_payload_ok(const Itest__Blob *b, int size)
{
  if (size == 0)
    return b == NULL || b->data.len == 0;
  if (b == NULL || b->data.len != (size_t)size)
    return 0;
  for (size_t i = 0; i < (size_t)size; i++)
    if (b->data.data[i] != pattern_byte(size, i))
      return 0;
  return 1;
}

void st_outreq_init(st_outreq *o, const int *sizes, size_t n, int payload_size)
{
  assert_true(n <= ST_MAX_WANTED);
  itest__output_request__init(&o->req);
  itest__blob__init(&o->blob);
  for (size_t i = 0; i < n; i++) {
    itest__wanted__init(&o->w[i]);
    o->w[i].size = sizes[i];
    o->wp[i] = &o->w[i];
  }
  o->req.n_responses = n;
  o->req.responses = n > 0 ? o->wp : NULL;
  o->blob.data.len = (size_t)payload_size;
  o->blob.data.data = st_pattern(payload_size);
  o->req.payload = &o->blob;
}

void st_outreq_free(st_outreq *o) { free(o->blob.data.data); }

void st_inreq_init(st_inreq *o, int size)
{
  itest__input_request__init(&o->req);
  itest__blob__init(&o->blob);
  o->blob.data.len = (size_t)size;
  o->blob.data.data = st_pattern(size);
  o->req.payload = &o->blob;
}

void st_inreq_free(st_inreq *o) { free(o->blob.data.data); }

/* ---- Service ---------------------------------------------------------------------------------- */

enum { M_OUTPUT, M_INPUT, M_DUPLEX, M_SINK, M_UNARY };

/* One streaming call the service is serving. Responses still to write wait in `todo`. */
struct st_call {
  st_counters *c;
  crpc_server_call *call;
  int method;
  int *todo;
  size_t n_todo, next, cap;
  int flood_left, flood_size, flooding;
  int seq;
  int eof;         /* the client closed its side */
  int64_t aggregated;
  int messages;
  st_call *sink_prev, *sink_next; /* Sink: the list of held calls (st_counters.sink) */
  int sink_held;                  /* Sink: on that list */
};

static st_call *call_new(st_counters *c, crpc_server_call *call, int method);

static void sink_unhold(st_call *sc)
{
  if (!sc->sink_held)
    return;
  if (sc->sink_prev != NULL)
    sc->sink_prev->sink_next = sc->sink_next;
  else
    sc->c->sink = sc->sink_next;
  if (sc->sink_next != NULL)
    sc->sink_next->sink_prev = sc->sink_prev;
  sc->sink_prev = sc->sink_next = NULL;
  sc->sink_held = 0;
  sc->c->sinks_held--;
}

static void call_free(st_call *sc)
{
  sink_unhold(sc);
  free(sc->todo);
  free(sc);
}

static void end_call(st_call *sc, crpc_code code, const char *why)
{
  assert_int_equal(crpc_server_call_end(sc->call, code, why), 0);
  if (code == CRPC_STATUS_OK)
    sc->c->ended_ok++;
  call_free(sc);
}

static void on_cancel(crpc_server_call *call, void *ud)
{
  st_call *sc = ud;

  assert_ptr_equal(call, sc->call);
  sc->c->cancels++;
  end_call(sc, CRPC_STATUS_CANCELLED, "cancelled");
}

static st_call *call_new(st_counters *c, crpc_server_call *call, int method)
{
  st_call *sc = calloc(1, sizeof(*sc));

  assert_non_null(sc);
  sc->c = c;
  sc->call = call;
  sc->method = method;
  c->started[method]++;
  crpc_server_call_on_cancel(call, on_cancel, sc);
  return sc;
}

static void queue(st_call *sc, const Itest__OutputRequest *req)
{
  for (size_t i = 0; i < req->n_responses; i++) {
    if (sc->n_todo == sc->cap) {
      sc->cap = sc->cap ? 2 * sc->cap : 8;
      sc->todo = realloc(sc->todo, sc->cap * sizeof(*sc->todo));
      assert_non_null(sc->todo);
    }
    sc->todo[sc->n_todo++] = req->responses[i]->size;
  }
  if (req->flood_count > 0) {
    sc->flood_left = req->flood_count;
    sc->flood_size = req->flood_size;
    sc->flooding = 1;
    sc->c->flood_written = 0;
  }
}

/* Writes what is due until done or refused. Returns 1 when the call was ended here. */
static int write_due(st_call *sc)
{
  while (sc->next < sc->n_todo || sc->flood_left > 0) {
    int size = sc->next < sc->n_todo ? sc->todo[sc->next] : sc->flood_size;
    Itest__OutputResponse resp = ITEST__OUTPUT_RESPONSE__INIT;
    Itest__Blob blob = ITEST__BLOB__INIT;
    int rc;

    blob.data.len = (size_t)size;
    blob.data.data = st_pattern(size);
    resp.payload = &blob;
    resp.seq = sc->seq;
    rc = sc->method == M_OUTPUT ? itest__test__streaming_output__server_write(sc->call, &resp)
                                : itest__test__full_duplex__server_write(sc->call, &resp);
    free(blob.data.data);
    if (rc == CRPC_EAGAIN) {
      sc->c->eagain++;
      return 0; /* on_writable resumes */
    }
    if (rc == CRPC_ESTATE)
      return 0; /* cancelled: on_cancel ends it */
    assert_int_equal(rc, 0);
    sc->seq++;
    sc->c->written++;
    if (sc->next < sc->n_todo) {
      sc->next++;
    } else {
      sc->flood_left--;
      sc->c->flood_written++;
    }
  }
  if (sc->method == M_OUTPUT || (sc->method == M_DUPLEX && sc->eof)) {
    end_call(sc, CRPC_STATUS_OK, NULL);
    return 1;
  }
  return 0;
}

static void on_writable(crpc_server_call *call, void *ud)
{
  st_call *sc = ud;

  assert_ptr_equal(call, sc->call);
  sc->c->writable++;
  write_due(sc);
}

static void output(crpc_server_call *call, const Itest__OutputRequest *req, void *ud)
{
  st_call *sc = call_new(ud, call, M_OUTPUT);

  sc->c->requests++;
  queue(sc, req);
  assert_int_equal(crpc_server_call_stream_handlers(call, NULL, on_writable, sc, 0), 0);
  write_due(sc);
}

static void duplex_read(crpc_server_call *call, const Itest__OutputRequest *msg, void *ud)
{
  st_call *sc = ud;

  assert_ptr_equal(call, sc->call);
  if (msg == NULL) {
    sc->eof = 1;
  } else {
    sc->c->requests++;
    queue(sc, msg);
  }
  write_due(sc);
}

static void duplex(crpc_server_call *call, void *ud)
{
  st_call *sc = call_new(ud, call, M_DUPLEX);

  assert_int_equal(itest__test__full_duplex__set_reader(call, duplex_read, on_writable, sc, 1), 0);
}

static void finish_input(st_call *sc)
{
  Itest__InputResponse resp = ITEST__INPUT_RESPONSE__INIT;

  resp.aggregated_size = sc->aggregated;
  resp.messages = sc->messages;
  /* One small message on a fresh window: never refused. */
  assert_int_equal(itest__test__streaming_input__server_write(sc->call, &resp), 0);
  sc->c->written++;
  end_call(sc, CRPC_STATUS_OK, NULL);
}

static void input_read(crpc_server_call *call, const Itest__InputRequest *msg, void *ud)
{
  st_call *sc = ud;

  if (msg == NULL) {
    finish_input(sc);
    return;
  }
  sc->c->requests++;
  sc->messages++;
  sc->aggregated += msg->payload != NULL ? (int64_t)msg->payload->data.len : 0;
  if (sc->method == M_INPUT) /* explicit reads: ask for the next one */
    assert_int_equal(crpc_server_call_read(call), 0);
}

static void input(crpc_server_call *call, void *ud)
{
  st_call *sc = call_new(ud, call, M_INPUT);

  assert_int_equal(itest__test__streaming_input__set_reader(call, input_read, NULL, sc, 0), 0);
  assert_int_equal(crpc_server_call_read(call), 0);
}

static void sink(crpc_server_call *call, void *ud)
{
  st_call *sc = call_new(ud, call, M_SINK);

  /* Held until released; other Sink calls may be held at the same time. */
  sc->sink_next = sc->c->sink;
  if (sc->sink_next != NULL)
    sc->sink_next->sink_prev = sc;
  sc->c->sink = sc;
  sc->sink_held = 1;
  sc->c->sinks_held++;
  /* No reader, no read: the client's messages wait in the window. */
}

void st_sink_release(st_counters *c)
{
  assert_non_null(c->sink);
  /* Unlink each call before its reader is set: with auto_read, a call may end (and be freed)
   * from inside set_reader. */
  while (c->sink != NULL) {
    st_call *sc = c->sink;

    sink_unhold(sc);
    assert_int_equal(itest__test__sink__set_reader(sc->call, input_read, NULL, sc, 1), 0);
  }
}

/* UnaryCall: answers at once, or holds the call (request.hold) until it is cancelled or
 * st_unary_release(). The request lives as long as the call, so a held one is answered from it. */
static void unary_answer(st_counters *c, crpc_server_call *call, const Itest__OutputRequest *req)
{
  int size = req->n_responses > 0 ? req->responses[0]->size
                                  : (req->payload != NULL ? (int)req->payload->data.len : 0);
  Itest__OutputResponse resp = ITEST__OUTPUT_RESPONSE__INIT;
  Itest__Blob blob = ITEST__BLOB__INIT;
  const crpc_metadata *md;
  size_t n = 0;

  md = crpc_server_call_metadata(call, &n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(crpc_server_call_add_trailer(call, md[i].key, md[i].value, md[i].value_len),
                     0);
  blob.data.len = (size_t)size;
  blob.data.data = st_pattern(size);
  resp.payload = &blob;
  assert_int_equal(itest__test__unary_call__reply(call, &resp), 0);
  free(blob.data.data);
  c->ended_ok++;
  c->written++;
}

static int unary_unhold(st_counters *c, crpc_server_call *call)
{
  for (int i = 0; i < c->unary_held; i++) {
    if (c->unary[i].call != call)
      continue;
    c->unary[i] = c->unary[--c->unary_held];
    return 1;
  }
  return 0;
}

static void unary_cancelled(crpc_server_call *call, void *ud)
{
  st_counters *c = ud;

  assert_true(unary_unhold(c, call));
  c->cancels++;
  assert_int_equal(crpc_server_call_fail(call, CRPC_STATUS_CANCELLED, "cancelled"), 0);
}

static void unary(crpc_server_call *call, const Itest__OutputRequest *req, void *ud)
{
  st_counters *c = ud;

  c->started[M_UNARY]++;
  c->requests++;
  if (!req->hold) {
    unary_answer(c, call, req);
    return;
  }
  assert_true(c->unary_held < ST_MAX_HELD);
  c->unary[c->unary_held].call = call;
  c->unary[c->unary_held].req = req;
  c->unary_held++;
  crpc_server_call_on_cancel(call, unary_cancelled, c);
}

void st_unary_release(st_counters *c)
{
  assert_true(c->unary_held > 0);
  while (c->unary_held > 0) {
    st_unary u = c->unary[--c->unary_held];

    unary_answer(c, u.call, u.req);
  }
}

const Itest__Test__Handlers st_service_handlers = {
    .streaming_output = output,
    .streaming_input = input,
    .full_duplex = duplex,
    .sink = sink,
    .unary_call = unary,
};

/* ---- Environment ------------------------------------------------------------------------------ */

int st_run_until(st_env *e, st_pred pred, void *arg, uint64_t timeout_ms)
{
  return ts_run_until(&e->loop, &e->tick, pred, arg, timeout_ms);
}

void st_run_for(st_env *e, uint64_t ms) { ts_run_for(&e->loop, &e->tick, ms); }

void st_wait_count(st_env *e, const int *value, int target, uint64_t timeout_ms, const char *what)
{
  ts_wait_count(&e->loop, &e->tick, value, target, timeout_ms, what);
}

void st_env_start(st_env *e) { st_env_start_at(e, "tcp://127.0.0.1:0"); }

void st_env_start_at(st_env *e, const char *listen)
{
  const char *colon;

  memset(e, 0, sizeof(*e));
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
  assert_int_equal(crpc_server_new(&e->srv, &e->loop), 0);
  assert_int_equal(crpc_server_listen(e->srv, listen, &e->port), 0);
  assert_int_equal(itest__test__crpc_register(e->srv, &st_service_handlers, &e->counters), 0);
  /* TCP with port 0: the port the server picked replaces it. */
  colon = strrchr(listen, ':');
  if (strncmp(listen, "tcp://", 6) == 0 && colon != NULL && strcmp(colon, ":0") == 0)
    snprintf(e->endpoint, sizeof(e->endpoint), "%.*s:%d", (int)(colon - listen), listen, e->port);
  else
    snprintf(e->endpoint, sizeof(e->endpoint), "%s", listen);
  assert_int_equal(crpc_channel_new(&e->ch, &e->loop, e->endpoint), 0);
}

static void closed(void *ud) { ((st_env *)ud)->closes++; }

static void walk_report(uv_handle_t *h, void *arg)
{
  (void)arg;
  fprintf(stderr, "handle left open: %s\n", uv_handle_type_name(h->type));
}

void st_env_finish(st_env *e)
{
  int want = e->closes; /* close callbacks the test already saw */

  if (e->ch != NULL) {
    crpc_channel_close(e->ch, closed, e);
    e->ch = NULL;
    want++;
  }
  if (e->srv != NULL) { /* NULL: the test closed or shut down the server itself */
    crpc_server_close(e->srv, closed, e);
    e->srv = NULL;
    want++;
  }
  st_wait_count(e, &e->closes, want, 10000, "close callbacks");
  uv_close((uv_handle_t *)&e->tick, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&e->loop) != 0) {
    uv_walk(&e->loop, walk_report, NULL);
    fail_msg("the loop still has handles");
  }
}

void st_in_thread(st_env *e, void (*fn)(void *), void *arg, uint64_t timeout_ms)
{
  ts_in_thread(&e->loop, &e->tick, fn, arg, timeout_ms);
}

/* ---- Client records --------------------------------------------------------------------------- */

void st_rec_init(st_rec *r, st_env *e)
{
  memset(r, 0, sizeof(*r));
  r->env = e;
  r->code = (crpc_code)-1;
}

void st_rec_out(crpc_stream *s, const Itest__OutputResponse *msg, void *ud)
{
  st_rec *r = ud;

  assert_ptr_equal(s, r->s);
  assert_true(r->nread < ST_MAX_SEEN);
  r->sizes[r->nread] = msg->payload != NULL ? (int)msg->payload->data.len : 0;
  r->seqs[r->nread] = msg->seq;
  assert_true(st_payload_ok(msg->payload, r->sizes[r->nread]));
  r->nread++;
}

void st_rec_in(crpc_stream *s, const Itest__InputResponse *msg, void *ud)
{
  st_rec *r = ud;

  assert_ptr_equal(s, r->s);
  r->nread++;
  r->aggregated = msg->aggregated_size;
}

void st_rec_done(crpc_stream *s, const crpc_status *status, void *ud)
{
  st_rec *r = ud;

  assert_ptr_equal(s, r->s);
  r->done++;
  r->code = status->code;
  snprintf(r->message, sizeof(r->message), "%s", status->message ? status->message : "");
  r->s = NULL;
}

void st_rec_writable(crpc_stream *s, void *ud)
{
  st_rec *r = ud;

  assert_ptr_equal(s, r->s);
  r->writable++;
}

static int rec_done(void *arg) { return ((st_rec *)arg)->done > 0; }

void st_wait_done(st_env *e, st_rec *r, uint64_t timeout_ms)
{
  if (!st_run_until(e, rec_done, r, timeout_ms))
    fail_msg("stream not done after %llu ms (%d responses read)", (unsigned long long)timeout_ms,
             r->nread);
}

void st_write_input(st_env *e, st_rec *r, int size)
{
  st_inreq req;
  int rc;

  st_inreq_init(&req, size);
  while ((rc = itest__test__streaming_input__write(r->s, &req.req)) == CRPC_EAGAIN)
    st_wait_count(e, &r->writable, r->writable + 1, ST_WAIT_MS, "on_writable");
  assert_int_equal(rc, 0);
  st_inreq_free(&req);
}

void st_write_duplex(st_env *e, st_rec *r, const int *sizes, size_t n, int payload)
{
  st_outreq req;
  int rc;

  st_outreq_init(&req, sizes, n, payload);
  while ((rc = itest__test__full_duplex__write(r->s, &req.req)) == CRPC_EAGAIN)
    st_wait_count(e, &r->writable, r->writable + 1, ST_WAIT_MS, "on_writable");
  assert_int_equal(rc, 0);
  st_outreq_free(&req);
}

int st_setup(void **state)
{
  st_env *e = calloc(1, sizeof(*e));

  if (e == NULL)
    return -1;
  st_env_start(e);
  *state = e;
  return 0;
}

int st_teardown(void **state)
{
  st_env_finish(*state);
  free(*state);
  return 0;
}
