/* Flow control through the typed stubs: a slow consumer keeps a fast producer's backlog bounded
 * by the window, a client that writes past the window gets CRPC_EAGAIN and on_writable later,
 * several Sink calls are held by the server at once, and 100 concurrent streams share one
 * connection. */
#include "stream.h"

#include <string.h>

#define WAIT_MS 30000
#define WINDOW 65536 /* CRPC_OPT_STREAM_WINDOW's default, both directions */

/* ---- Slow consumer ---------------------------------------------------------------------------- */

enum { FLOOD_COUNT = 120, FLOOD_SIZE = 4000 };
/* A sender may send while its window is above zero, so one message may overshoot it. */
#define FLOOD_BOUND (WINDOW / FLOOD_SIZE + 1)

typedef struct slow {
  st_rec r;
  uv_timer_t timer;
  int reading;       /* a read is pending */
  int max_backlog;   /* most responses written but not yet read, seen at any read */
  int order_ok;
} slow;

static void slow_read(crpc_stream *s, const Itest__OutputResponse *msg, void *ud)
{
  slow *x = ud;
  int backlog = x->r.env->counters.flood_written - x->r.nread;

  if (msg->seq != x->r.nread)
    x->order_ok = 0;
  if (backlog > x->max_backlog)
    x->max_backlog = backlog;
  x->reading = 0;
  st_rec_out(s, msg, &x->r);
}

static void slow_writable(crpc_stream *s, void *ud) { st_rec_writable(s, &((slow *)ud)->r); }
static void slow_done(crpc_stream *s, const crpc_status *st, void *ud)
{
  slow *x = ud;

  st_rec_done(s, st, &x->r);
  uv_timer_stop(&x->timer);
}

static const Itest__Test__StreamingOutputHandlers slow_handlers = {slow_read, slow_writable,
                                                                   slow_done, 0};

static void slow_tick(uv_timer_t *t)
{
  slow *x = t->data;

  if (x->r.s != NULL && !x->reading) {
    x->reading = 1;
    assert_int_equal(crpc_stream_read(x->r.s), 0);
  }
}

/* Starts a server-streaming flood of FLOOD_COUNT × FLOOD_SIZE that the client does not read
 * until x->timer is started with slow_tick. */
static void start_flood(st_env *e, slow *x)
{
  st_outreq req;

  memset(x, 0, sizeof(*x));
  st_rec_init(&x->r, e);
  x->order_ok = 1;
  assert_int_equal(uv_timer_init(&e->loop, &x->timer), 0);
  x->timer.data = x;
  assert_int_equal(itest__test__streaming_output__stream(e->ch, NULL, &slow_handlers, x, &x->r.s),
                   0);
  st_outreq_init(&req, NULL, 0, 0);
  req.req.flood_count = FLOOD_COUNT;
  req.req.flood_size = FLOOD_SIZE;
  assert_int_equal(itest__test__streaming_output__write(x->r.s, &req.req), 0);
  st_outreq_free(&req);
  assert_int_equal(crpc_stream_close_send(x->r.s), 0);
}

static void slow_consumer(void **state)
{
  st_env *e = *state;
  slow x;
  int before;

  start_flood(e, &x);
  /* The server writes until the window refuses it... */
  st_wait_count(e, &e->counters.eagain, 1, WAIT_MS, "server refused with CRPC_EAGAIN");
  before = e->counters.flood_written;
  /* ...and no further while nobody reads. */
  st_run_for(e, 150);
  assert_int_equal(e->counters.flood_written, before);
  assert_true(before >= WINDOW / (FLOOD_SIZE + 64));
  assert_true(before <= FLOOD_BOUND);
  assert_int_equal(x.r.nread, 0);
  /* Read one message every 2 ms, driven by a timer. */
  assert_int_equal(uv_timer_start(&x.timer, slow_tick, 2, 2), 0);
  st_wait_done(e, &x.r, WAIT_MS);
  uv_close((uv_handle_t *)&x.timer, NULL);
  assert_int_equal(x.r.code, CRPC_STATUS_OK);
  assert_int_equal(x.r.nread, FLOOD_COUNT);
  assert_true(x.order_ok);
  for (int i = 0; i < FLOOD_COUNT; i++)
    assert_int_equal(x.r.sizes[i], FLOOD_SIZE);
  assert_true(x.max_backlog <= FLOOD_BOUND);
  assert_true(e->counters.writable >= 1);
  st_run_for(e, 5); /* lets the timer's close run */
}

/* ---- A client writing past the window --------------------------------------------------------- */

enum { SINK_SIZE = 8000, SINK_COUNT = 20 };

static const Itest__Test__SinkHandlers sink_handlers = {st_rec_in, st_rec_writable, st_rec_done, 0};

static void writer_past_window(void **state)
{
  st_env *e = *state;
  st_inreq req;
  st_rec r;
  int sent = 0, rc;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__sink__stream(e->ch, NULL, &sink_handlers, &r, &r.s), 0);
  st_wait_count(e, &e->counters.started[3], 1, WAIT_MS, "sink call at the server");
  st_inreq_init(&req, SINK_SIZE);
  while ((rc = itest__test__sink__write(r.s, &req.req)) == 0)
    assert_true(++sent <= WINDOW / SINK_SIZE + 1);
  assert_int_equal(rc, CRPC_EAGAIN);
  assert_true(sent >= WINDOW / (SINK_SIZE + 64));
  /* Refused again, and no on_writable while the server reads nothing. */
  assert_int_equal(itest__test__sink__write(r.s, &req.req), CRPC_EAGAIN);
  st_run_for(e, 100);
  assert_int_equal(r.writable, 0);
  assert_int_equal(e->counters.requests, 0);
  st_sink_release(&e->counters);
  st_wait_count(e, &r.writable, 1, WAIT_MS, "on_writable after the server read");
  while (sent < SINK_COUNT) {
    rc = itest__test__sink__write(r.s, &req.req);
    if (rc == CRPC_EAGAIN) {
      st_wait_count(e, &r.writable, r.writable + 1, WAIT_MS, "on_writable");
      continue;
    }
    assert_int_equal(rc, 0);
    sent++;
  }
  st_inreq_free(&req);
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  assert_int_equal(crpc_stream_read(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.aggregated, (int64_t)SINK_SIZE * SINK_COUNT);
  assert_int_equal(e->counters.requests, SINK_COUNT);
}

/* ---- Several Sink calls held at once ---------------------------------------------------------- */

enum { N_SINKS = 4, SINK_MSGS = 3 };

static int sink_size(int index) { return 1000 * (index + 1); }

/* Every Sink call is held by the server at the same time (each has its own state), then all are
 * released and each answers the sum of its own payloads. */
static void concurrent_sinks(void **state)
{
  st_env *e = *state;
  st_rec r[N_SINKS];

  for (int i = 0; i < N_SINKS; i++) {
    st_rec_init(&r[i], e);
    assert_int_equal(itest__test__sink__stream(e->ch, NULL, &sink_handlers, &r[i], &r[i].s), 0);
  }
  st_wait_count(e, &e->counters.started[3], N_SINKS, WAIT_MS, "sink calls at the server");
  assert_int_equal(e->counters.sinks_held, N_SINKS);
  for (int i = 0; i < N_SINKS; i++) {
    st_inreq req;

    st_inreq_init(&req, sink_size(i));
    /* SINK_MSGS * sink_size(i) stays well inside the window: never refused. */
    for (int k = 0; k < SINK_MSGS; k++)
      assert_int_equal(itest__test__sink__write(r[i].s, &req.req), 0);
    st_inreq_free(&req);
    assert_int_equal(crpc_stream_close_send(r[i].s), 0);
    assert_int_equal(crpc_stream_read(r[i].s), 0);
  }
  st_run_for(e, 50);
  assert_int_equal(e->counters.requests, 0); /* all still held */
  st_sink_release(&e->counters);
  assert_int_equal(e->counters.sinks_held, 0);
  for (int i = 0; i < N_SINKS; i++) {
    st_wait_done(e, &r[i], WAIT_MS);
    assert_int_equal(r[i].code, CRPC_STATUS_OK);
    assert_int_equal(r[i].nread, 1);
    assert_int_equal(r[i].aggregated, (int64_t)sink_size(i) * SINK_MSGS);
  }
  assert_int_equal(e->counters.requests, N_SINKS * SINK_MSGS);
  assert_int_equal(e->counters.ended_ok, N_SINKS);
  assert_null(e->counters.sink);
}

/* ---- 100 streams on one connection ------------------------------------------------------------ */

enum { N_STREAMS = 100, ROUNDS = 3 };

typedef struct pinger {
  st_rec r;
  int index;
  int *finished;
} pinger;

static int pinger_size(int index, int round) { return 1 + ((index * 977 + round * 131) % 3000); }

static void pinger_send(pinger *p)
{
  int size = pinger_size(p->index, p->r.nread);
  st_outreq req;

  st_outreq_init(&req, &size, 1, p->index + p->r.nread);
  /* One small message in flight per stream: the window never refuses it. */
  assert_int_equal(itest__test__full_duplex__write(p->r.s, &req.req), 0);
  st_outreq_free(&req);
}

static void pinger_read(crpc_stream *s, const Itest__OutputResponse *msg, void *ud)
{
  pinger *p = ud;

  st_rec_out(s, msg, &p->r);
  if (p->r.nread < ROUNDS)
    pinger_send(p);
  else
    assert_int_equal(crpc_stream_close_send(s), 0);
}

static void pinger_done(crpc_stream *s, const crpc_status *st, void *ud)
{
  pinger *p = ud;

  st_rec_done(s, st, &p->r);
  (*p->finished)++;
}

static const Itest__Test__FullDuplexHandlers pinger_handlers = {pinger_read, NULL, pinger_done, 1};

static void hundred_streams(void **state)
{
  st_env *e = *state;
  static pinger p[N_STREAMS];
  int finished = 0;

  for (int i = 0; i < N_STREAMS; i++) {
    st_rec_init(&p[i].r, e);
    p[i].index = i;
    p[i].finished = &finished;
    assert_int_equal(
        itest__test__full_duplex__stream(e->ch, NULL, &pinger_handlers, &p[i], &p[i].r.s), 0);
    pinger_send(&p[i]);
  }
  st_wait_count(e, &finished, N_STREAMS, WAIT_MS, "streams done");
  for (int i = 0; i < N_STREAMS; i++) {
    assert_int_equal(p[i].r.done, 1);
    assert_int_equal(p[i].r.code, CRPC_STATUS_OK);
    assert_int_equal(p[i].r.nread, ROUNDS);
    for (int k = 0; k < ROUNDS; k++) {
      assert_int_equal(p[i].r.sizes[k], pinger_size(i, k));
      assert_int_equal(p[i].r.seqs[k], k);
    }
  }
  assert_int_equal(e->counters.started[2], N_STREAMS);
  assert_int_equal(e->counters.ended_ok, N_STREAMS);
  assert_int_equal(e->counters.requests, N_STREAMS * ROUNDS);
}

/* ---- One slow stream does not hold up the others ------------------------------------------------ */

/* A flood stream stalls on its window (the client reads nothing), and meanwhile ten bidi streams
 * on the same connection run their round trips to the end; then the flood is read out. */
static void slow_stream_does_not_stall_others(void **state)
{
  st_env *e = *state;
  slow x;
  static pinger p[10];
  int finished = 0;

  start_flood(e, &x);
  st_wait_count(e, &e->counters.eagain, 1, WAIT_MS, "flood stalled on its window");

  for (int i = 0; i < 10; i++) {
    st_rec_init(&p[i].r, e);
    p[i].index = i;
    p[i].finished = &finished;
    assert_int_equal(
        itest__test__full_duplex__stream(e->ch, NULL, &pinger_handlers, &p[i], &p[i].r.s), 0);
    pinger_send(&p[i]);
  }
  st_wait_count(e, &finished, 10, WAIT_MS, "the other streams done while the flood is stalled");
  for (int i = 0; i < 10; i++) {
    assert_int_equal(p[i].r.code, CRPC_STATUS_OK);
    assert_int_equal(p[i].r.nread, ROUNDS);
  }
  assert_int_equal(x.r.nread, 0); /* the flood was still stalled all along */
  assert_false(x.r.done);

  assert_int_equal(uv_timer_start(&x.timer, slow_tick, 2, 2), 0);
  st_wait_done(e, &x.r, WAIT_MS);
  uv_close((uv_handle_t *)&x.timer, NULL);
  assert_int_equal(x.r.code, CRPC_STATUS_OK);
  assert_int_equal(x.r.nread, FLOOD_COUNT);
  st_run_for(e, 5);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(slow_consumer, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(writer_past_window, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(concurrent_sinks, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(hundred_streams, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(slow_stream_does_not_stall_others, st_setup, st_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
