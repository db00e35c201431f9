/* The call contract both sides enforce (PROTOCOL.md §6.1, §6.2, §6.4; crpc/server.h, crpc/stream.h):
 *  - a client-streaming call has exactly one response: a client whose server ends the call OK
 *    after 0 or 2 responses reports INTERNAL (raw server peer), and a server handler cannot write
 *    a second response nor end the call OK without one;
 *  - a second finish of a server call, while its handle is still valid, returns CRPC_ESTATE and
 *    changes nothing;
 *  - a STATUS text that is not UTF-8 reaches the application repaired (raw server peer);
 *  - a blocking stream cancelled with crpc_stream_cancel_async() before it is finished ends
 *    CANCELLED, every time, although its server answers OK as soon as the client half-closes
 *    (and the client half-closed just before the cancel). */
#include "rawpeer.h"
#include "stream.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/frame.h"

#define WAIT_MS 20000

/* ---- A raw server peer: a listening socket on 127.0.0.1 driven from the test's loop ---------- */

static int raw_listen(int *port)
{
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

  assert_true(fd >= 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 4), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

typedef struct acceptor {
  int lfd;
  int fd;
} acceptor;

static int try_accept(void *arg)
{
  acceptor *a = arg;

  if (a->fd < 0)
    a->fd = accept(a->lfd, NULL, NULL);
  return a->fd >= 0;
}

/* Runs the loop (the client connects from it) until the connection is accepted; the accepted
 * socket is blocking. */
static int raw_accept(st_env *e, int lfd)
{
  acceptor a = {lfd, -1};

  if (!st_run_until(e, try_accept, &a, WAIT_MS))
    fail_msg("the client did not connect");
  assert_int_equal(fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) & ~O_NONBLOCK), 0);
  return a.fd;
}

/* Appends a STATUS frame without message to buf at *len. */
static void put_status(uint8_t *buf, size_t cap, size_t *len, uint32_t id, uint32_t code,
                       const char *text, size_t text_len)
{
  size_t fixed = crpc__status_fixed_size(text_len, 0, 0);

  assert_true(*len + CRPC__HDR_LEN + fixed <= cap);
  crpc__hdr_encode(buf + *len, CRPC__F_STATUS, 0, id, (uint32_t)fixed);
  crpc__status_fixed_encode(buf + *len + CRPC__HDR_LEN, code, text, (uint32_t)text_len, NULL, 0,
                            NULL, 0);
  *len += CRPC__HDR_LEN + fixed;
}

/* Appends a MESSAGE frame holding an InputResponse to buf at *len. */
static void put_response(uint8_t *buf, size_t cap, size_t *len, uint32_t id, int64_t size)
{
  Itest__InputResponse resp = ITEST__INPUT_RESPONSE__INIT;
  size_t n;

  resp.aggregated_size = size;
  n = itest__input_response__get_packed_size(&resp);
  assert_true(*len + CRPC__HDR_LEN + n <= cap);
  crpc__hdr_encode(buf + *len, CRPC__F_MESSAGE, 0, id, (uint32_t)n);
  itest__input_response__pack(&resp, buf + *len + CRPC__HDR_LEN);
  *len += CRPC__HDR_LEN + n;
}

static const Itest__Test__StreamingInputHandlers input_handlers = {st_rec_in, NULL, st_rec_done, 1};

/* Starts a client-streaming call (async, auto_read) to a raw peer, which answers with what
 * `answer` holds after its preface; returns when the call is done. */
static void client_streaming_against(st_env *e, const uint8_t *answer, size_t answer_len,
                                     st_rec *r)
{
  char target[64];
  crpc_channel *ch;
  uint8_t out[256];
  int port, lfd, fd;

  lfd = raw_listen(&port);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&ch, &e->loop, target), 0);
  st_rec_init(r, e);
  assert_int_equal(itest__test__streaming_input__stream(ch, NULL, &input_handlers, r, &r->s), 0);
  fd = raw_accept(e, lfd);
  crpc__preface_encode(out);
  ts_send_all(fd, out, CRPC__PREFACE_LEN);
  ts_send_all(fd, answer, answer_len); /* the call is id 1: the first of the connecting side */
  st_wait_done(e, r, WAIT_MS);
  assert_int_equal(r->done, 1);
  crpc_channel_close(ch, NULL, NULL);
  close(fd);
  close(lfd);
}

/* OK with no response at all: INTERNAL, not OK. */
static void client_streaming_ok_without_response_is_internal(void **state)
{
  st_env *e = *state;
  uint8_t buf[256];
  size_t len = 0;
  st_rec r;

  put_status(buf, sizeof(buf), &len, 1, CRPC_STATUS_OK, NULL, 0);
  client_streaming_against(e, buf, len, &r);
  assert_int_equal(r.nread, 0);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  assert_non_null(strstr(r.message, "without a response"));
}

/* Two responses, then OK: the second ends the call INTERNAL (the client cancels it). */
static void client_streaming_second_response_is_internal(void **state)
{
  st_env *e = *state;
  uint8_t buf[256];
  size_t len = 0;
  st_rec r;

  put_response(buf, sizeof(buf), &len, 1, 7);
  put_response(buf, sizeof(buf), &len, 1, 8);
  put_status(buf, sizeof(buf), &len, 1, CRPC_STATUS_OK, NULL, 0);
  client_streaming_against(e, buf, len, &r);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.aggregated, 7);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
  assert_non_null(strstr(r.message, "second response"));
}

/* Exactly one response, then OK: OK (the rule does not break the good case). */
static void client_streaming_one_response_is_ok(void **state)
{
  st_env *e = *state;
  uint8_t buf[256];
  size_t len = 0;
  st_rec r;

  put_response(buf, sizeof(buf), &len, 1, 9);
  put_status(buf, sizeof(buf), &len, 1, CRPC_STATUS_OK, NULL, 0);
  client_streaming_against(e, buf, len, &r);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

/* A STATUS text with ill-formed UTF-8 and a NUL: each becomes U+FFFD, the rest is kept. */
static void status_text_not_utf8_is_repaired(void **state)
{
  static const char text[] = "caf\xc3\xa9 \xff|\xe2\x82|\xed\xa0\x80|a\0b";
  static const char want[] = "caf\xc3\xa9 \xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd"
                             "\xef\xbf\xbd|a\xef\xbf\xbd"
                             "b";
  st_env *e = *state;
  uint8_t buf[256];
  size_t len = 0;
  st_rec r;

  put_status(buf, sizeof(buf), &len, 1, CRPC_STATUS_ABORTED, text, sizeof(text) - 1);
  client_streaming_against(e, buf, len, &r);
  assert_int_equal(r.code, CRPC_STATUS_ABORTED);
  assert_string_equal(r.message, want);
}

/* ---- Server side: handlers that misuse the contract -------------------------------------------- */

enum { MODE_END_OK_WITHOUT_RESPONSE, MODE_TWO_RESPONSES, MODE_FINISH_TWICE, MODE_FAIL_TWICE };

typedef struct misuse {
  int mode;
  int rc[6];   /* what the API calls returned, in order */
  int nrc;
  int ended;   /* the handler's read callback ran to its end */
} misuse;

static void note(misuse *m, int rc)
{
  assert_true(m->nrc < 6);
  m->rc[m->nrc++] = rc;
}

static void misuse_read(crpc_server_call *call, const Itest__InputRequest *msg, void *ud)
{
  Itest__InputResponse resp = ITEST__INPUT_RESPONSE__INIT;
  misuse *m = ud;

  if (msg != NULL)
    return;
  resp.aggregated_size = 42;
  switch (m->mode) {
  case MODE_END_OK_WITHOUT_RESPONSE:
    note(m, crpc_server_call_end(call, CRPC_STATUS_OK, NULL));
    break;
  case MODE_TWO_RESPONSES:
    note(m, itest__test__streaming_input__server_write(call, &resp));
    resp.aggregated_size = 43;
    note(m, itest__test__streaming_input__server_write(call, &resp));
    note(m, crpc_server_call_end(call, CRPC_STATUS_OK, NULL));
    break;
  case MODE_FINISH_TWICE: /* inside on_read: the handle is valid until it returns */
    note(m, itest__test__streaming_input__server_write(call, &resp));
    note(m, crpc_server_call_end(call, CRPC_STATUS_OK, NULL));
    note(m, crpc_server_call_end(call, CRPC_STATUS_OK, NULL));
    note(m, crpc_server_call_fail(call, CRPC_STATUS_ABORTED, "again"));
    note(m, crpc_server_call_fail_details(call, CRPC_STATUS_ABORTED, "again",
                                          (const uint8_t *)"x", 1));
    note(m, crpc_server_call_reply(call, &resp.base));
    break;
  case MODE_FAIL_TWICE:
    note(m, crpc_server_call_fail(call, CRPC_STATUS_ABORTED, "first"));
    note(m, crpc_server_call_end(call, CRPC_STATUS_OK, NULL));
    note(m, crpc_server_call_fail(call, CRPC_STATUS_UNAVAILABLE, "second"));
    break;
  default:
    fail();
  }
  m->ended = 1;
}

static void misuse_input(crpc_server_call *call, void *ud)
{
  assert_int_equal(itest__test__streaming_input__set_reader(call, misuse_read, NULL, ud, 1), 0);
}

static const Itest__Test__Handlers misuse_handlers = {.streaming_input = misuse_input};

static void closed(void *ud) { (*(int *)ud)++; }

/* Runs one client-streaming call (no request, then close) against a server whose handler acts
 * as m->mode says. */
static void run_misuse(st_env *e, misuse *m, st_rec *r)
{
  crpc_server *srv;
  crpc_channel *ch;
  char target[64];
  int port, closes = 0;

  assert_int_equal(crpc_server_new(&srv, &e->loop), 0);
  assert_int_equal(crpc_server_listen(srv, "tcp://127.0.0.1:0", &port), 0);
  assert_int_equal(itest__test__crpc_register(srv, &misuse_handlers, m), 0);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&ch, &e->loop, target), 0);
  st_rec_init(r, e);
  assert_int_equal(itest__test__streaming_input__stream(ch, NULL, &input_handlers, r, &r->s), 0);
  assert_int_equal(crpc_stream_close_send(r->s), 0);
  st_wait_done(e, r, WAIT_MS);
  assert_int_equal(r->done, 1);
  assert_int_equal(m->ended, 1);
  crpc_channel_close(ch, closed, &closes);
  crpc_server_close(srv, closed, &closes); /* waits for every call to be finished once */
  st_wait_count(e, &closes, 2, WAIT_MS, "close callbacks");
}

/* Ending a client-streaming call OK without its response: refused (CRPC_EINVAL), INTERNAL. */
static void server_end_ok_without_response_is_internal(void **state)
{
  misuse m = {MODE_END_OK_WITHOUT_RESPONSE, {0}, 0, 0};
  st_rec r;

  run_misuse(*state, &m, &r);
  assert_int_equal(m.nrc, 1);
  assert_int_equal(m.rc[0], CRPC_EINVAL);
  assert_int_equal(r.nread, 0);
  assert_int_equal(r.code, CRPC_STATUS_INTERNAL);
}

/* A second response is refused (CRPC_ESTATE, nothing sent); the call still ends OK. */
static void server_second_response_is_refused(void **state)
{
  misuse m = {MODE_TWO_RESPONSES, {0}, 0, 0};
  st_rec r;

  run_misuse(*state, &m, &r);
  assert_int_equal(m.nrc, 3);
  assert_int_equal(m.rc[0], 0);
  assert_int_equal(m.rc[1], CRPC_ESTATE);
  assert_int_equal(m.rc[2], 0);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.aggregated, 42);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

/* Every finish after the first returns CRPC_ESTATE and leaves the outcome as it was. */
static void server_second_finish_is_estate(void **state)
{
  misuse m = {MODE_FINISH_TWICE, {0}, 0, 0};
  st_rec r;

  run_misuse(*state, &m, &r);
  assert_int_equal(m.nrc, 6);
  assert_int_equal(m.rc[0], 0);
  assert_int_equal(m.rc[1], 0);
  for (int i = 2; i < 6; i++)
    assert_int_equal(m.rc[i], CRPC_ESTATE);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.code, CRPC_STATUS_OK);
}

static void server_second_finish_after_fail_is_estate(void **state)
{
  misuse m = {MODE_FAIL_TWICE, {0}, 0, 0};
  st_rec r;

  run_misuse(*state, &m, &r);
  assert_int_equal(m.nrc, 3);
  assert_int_equal(m.rc[0], 0);
  assert_int_equal(m.rc[1], CRPC_ESTATE);
  assert_int_equal(m.rc[2], CRPC_ESTATE);
  assert_int_equal(r.code, CRPC_STATUS_ABORTED);
  assert_string_equal(r.message, "first");
}

/* ---- Cancel before finish, on the same thread ------------------------------------------------ */

#define CANCEL_TRIES 200

typedef struct cancel_job {
  const char *target;
  int tries;     /* streams cancelled and finished */
  int wrong;     /* of which finish did not report CANCELLED */
  int ok;        /* of which it reported the server's OK */
  int errors;    /* API calls that failed */
} cancel_job;

/* Cancels s with crpc_stream_cancel_async(), then finishes it, and counts the outcome in j. */
static void cancel_then_finish(cancel_job *j, crpc_stream *s)
{
  crpc_status status;

  crpc_stream_cancel_async(s);
  if (itest__test__streaming_input__finish_wait(s, &status) != 0) {
    j->errors++;
    return;
  }
  j->tries++;
  if (status.code != CRPC_STATUS_CANCELLED)
    j->wrong++;
  if (status.code == CRPC_STATUS_OK)
    j->ok++;
  crpc_status_reset(&status);
}

/* StreamingInput's server answers OK as soon as the client half-closes. The client cancels, then
 * finishes: the cancel was asked for before the finish, so it must win over the server's OK,
 * whether finish sends the half-close or the client sent it before the cancel (the server's OK
 * may then be in the client's socket, unread, before the loop's wake-up for the cancel). */
static void cancel_then_finish_job(void *arg)
{
  cancel_job *j = arg;
  uint64_t end = ts_now_ms() + 60000;
  crpc_channel *ch;

  if (crpc_channel_new(&ch, NULL, j->target) != 0) {
    j->errors++;
    return;
  }
  for (int i = 0; i < CANCEL_TRIES && ts_now_ms() < end; i++) {
    crpc_stream *s;

    if (itest__test__streaming_input__open(ch, NULL, &s) != 0) {
      j->errors++;
      continue;
    }
    if (i % 2 == 1) {
      /* Every other stream sends a request and half-closes itself: the server's OK may be on
       * its way, or already in the socket, when the cancel is asked for. The others leave the
       * half-close to finish (the server's OK cannot come before it). */
      st_inreq req;

      st_inreq_init(&req, 10);
      if (itest__test__streaming_input__send_wait(s, &req.req) != 0)
        j->errors++;
      st_inreq_free(&req);
      if (crpc_stream_close_send(s) != 0)
        j->errors++;
    }
    cancel_then_finish(j, s);
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void cancel_async_before_finish_wins(void **state)
{
  st_env *e = *state;
  cancel_job j = {e->endpoint, 0, 0, 0, 0};

  st_in_thread(e, cancel_then_finish_job, &j, 90000);
  printf("cancel_async then finish: %d tries, %d not CANCELLED (%d OK), %d errors\n", j.tries,
         j.wrong, j.ok, j.errors);
  assert_int_equal(j.errors, 0);
  assert_int_equal(j.tries, CANCEL_TRIES);
  assert_int_equal(j.wrong, 0);
}

/* The same, with the server's OK already in the client's socket when the cancel is asked for:
 * the server below marks each call answered only on the loop turn after it ended it, when its
 * output has been written (loopback: the bytes are then in the client's socket), and the client
 * asks for the cancel only once it sees the mark. */
typedef struct answered {
  uv_timer_t timer;
  atomic_int count;
} answered;

static answered g_answered;

static void mark_answered(uv_timer_t *t)
{
  answered *a = t->data;

  atomic_fetch_add(&a->count, 1);
}

static void answer_on_close(crpc_server_call *call, const Itest__InputRequest *msg, void *ud)
{
  Itest__InputResponse resp = ITEST__INPUT_RESPONSE__INIT;

  (void)ud;
  if (msg != NULL)
    return;
  assert_int_equal(itest__test__streaming_input__server_write(call, &resp), 0);
  assert_int_equal(crpc_server_call_end(call, CRPC_STATUS_OK, NULL), 0);
  uv_timer_start(&g_answered.timer, mark_answered, 0, 0);
}

static void answer_input(crpc_server_call *call, void *ud)
{
  assert_int_equal(itest__test__streaming_input__set_reader(call, answer_on_close, NULL, ud, 1), 0);
}

static const Itest__Test__Handlers answer_handlers = {.streaming_input = answer_input};

static void cancel_after_unread_ok_job(void *arg)
{
  cancel_job *j = arg;
  uint64_t end = ts_now_ms() + 60000;
  crpc_channel *ch;

  if (crpc_channel_new(&ch, NULL, j->target) != 0) {
    j->errors++;
    return;
  }
  /* A blocking channel moves bytes only inside its blocking functions: one whole stream first,
   * so that the connection is up and each half-close below goes out before close_send returns. */
  {
    crpc_stream *s;
    crpc_status status;

    if (itest__test__streaming_input__open(ch, NULL, &s) != 0 ||
        itest__test__streaming_input__finish_wait(s, &status) != 0 || status.code != CRPC_STATUS_OK)
      j->errors++;
    crpc_status_reset(&status);
  }
  for (int i = 0; i < CANCEL_TRIES && ts_now_ms() < end; i++) {
    int before = atomic_load(&g_answered.count);
    crpc_stream *s;

    if (itest__test__streaming_input__open(ch, NULL, &s) != 0) {
      j->errors++;
      continue;
    }
    if (crpc_stream_close_send(s) != 0)
      j->errors++;
    while (atomic_load(&g_answered.count) == before && ts_now_ms() < end)
      uv_sleep(1);
    cancel_then_finish(j, s);
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void cancel_async_before_finish_wins_over_unread_ok(void **state)
{
  st_env *e = *state;
  crpc_server *srv;
  char target[64];
  int port, closes = 0;

  assert_int_equal(uv_timer_init(&e->loop, &g_answered.timer), 0);
  g_answered.timer.data = &g_answered;
  atomic_init(&g_answered.count, 0);
  assert_int_equal(crpc_server_new(&srv, &e->loop), 0);
  assert_int_equal(crpc_server_listen(srv, "tcp://127.0.0.1:0", &port), 0);
  assert_int_equal(itest__test__crpc_register(srv, &answer_handlers, NULL), 0);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);

  cancel_job j = {target, 0, 0, 0, 0};
  st_in_thread(e, cancel_after_unread_ok_job, &j, 90000);
  printf("cancel_async with the OK unread, then finish: %d tries, %d not CANCELLED (%d OK), "
         "%d errors\n", j.tries, j.wrong, j.ok, j.errors);
  crpc_server_close(srv, closed, &closes);
  st_wait_count(e, &closes, 1, WAIT_MS, "close callback");
  uv_close((uv_handle_t *)&g_answered.timer, NULL);
  assert_int_equal(j.errors, 0);
  assert_int_equal(j.tries, CANCEL_TRIES);
  assert_int_equal(j.wrong, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(client_streaming_ok_without_response_is_internal, st_setup,
                                      st_teardown),
      cmocka_unit_test_setup_teardown(client_streaming_second_response_is_internal, st_setup,
                                      st_teardown),
      cmocka_unit_test_setup_teardown(client_streaming_one_response_is_ok, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(status_text_not_utf8_is_repaired, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(server_end_ok_without_response_is_internal, st_setup,
                                      st_teardown),
      cmocka_unit_test_setup_teardown(server_second_response_is_refused, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(server_second_finish_is_estate, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(server_second_finish_after_fail_is_estate, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(cancel_async_before_finish_wins, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(cancel_async_before_finish_wins_over_unread_ok, st_setup,
                                      st_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
