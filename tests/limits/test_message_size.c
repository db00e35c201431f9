/* Message size limits: too big to send is RESOURCE_EXHAUSTED locally; too big for the server to
 * receive is RESOURCE_EXHAUSTED from the server; a response too big for the client is
 * RESOURCE_EXHAUSTED. In every case the connection goes on serving calls. */
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define LIMIT 1024

typedef struct fixture {
  itest_server *srv;
  uv_loop_t loop;
  crpc_channel *ch;
} fixture;

static void open_fixture(fixture *f, void **state, const itest_server_opts *so, crpc_option copt,
                         int64_t cval) {
  f->srv = itest_server_start(ITEST_TRANSPORT(state), so);
  uv_loop_init(&f->loop);
  assert_int_equal(crpc_channel_new(&f->ch, &f->loop, itest_server_endpoint(f->srv)), 0);
  if (copt != CRPC_OPT_COUNT_) assert_int_equal(crpc_channel_set_option(f->ch, copt, cval), 0);
}

static void close_fixture(fixture *f) {
  itest_channel_close(&f->loop, f->ch);
  itest_loop_finish(&f->loop);
  itest_server_stop(f->srv);
}

/* One call with a payload of `size` bytes (or a reply of reply_size bytes); waits for it. */
static void sized_call(fixture *f, size_t size, uint32_t reply_size, itest_rec *rec) {
  uint8_t *data = malloc(size ? size : 1);
  assert_non_null(data);
  memset(data, 'q', size);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.payload.data = data;
  req.payload.len = size;
  req.reply_size = reply_size;
  req.seq = 5;
  memset(rec, 0, sizeof *rec);
  int rc = itest__test__echo__start(f->ch, &req, NULL, itest_rec_done, rec, NULL);
  free(data); /* encoded already */
  assert_int_equal(rc, 0);
  itest_recs one = {rec, 1};
  assert_true(itest_run_until(&f->loop, itest_all_done, &one, 20000));
}

static void good_call(fixture *f) {
  itest_rec rec;
  sized_call(f, 100, 0, &rec);
  assert_int_equal(rec.completions, 1);
  if (rec.code != CRPC_STATUS_OK) fail_msg("%s: %s", crpc_code_name(rec.code), rec.message);
  assert_int_equal(rec.payload_len, 100);
}

static void over_client_send_limit(void **state) {
  fixture f;
  open_fixture(&f, state, NULL, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, LIMIT);
  good_call(&f);
  itest_rec rec;
  sized_call(&f, 2 * LIMIT, 0, &rec);
  assert_int_equal(rec.completions, 1);
  assert_int_equal(rec.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(rec.message[0] != '\0');
  good_call(&f);
  /* it never reached the server */
  assert_int_equal(atomic_load(&itest_server_stats(f.srv)->received), 2);

  /* blocking, too */
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, NULL, itest_server_endpoint(f.srv)), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_SEND_MESSAGE_SIZE, LIMIT), 0);
  uint8_t big[2 * LIMIT];
  memset(big, 'b', sizeof big);
  Itest__EchoRequest req = ITEST__ECHO_REQUEST__INIT;
  req.payload.data = big;
  req.payload.len = sizeof big;
  Itest__EchoReply *resp = NULL;
  crpc_status st = {0};
  assert_int_equal(itest__test__echo__call(ch, &req, &resp, &st, NULL), 0);
  assert_int_equal(st.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_null(resp);
  crpc_status_reset(&st);
  crpc_channel_close(ch, NULL, NULL);
  close_fixture(&f);
}

static void over_server_recv_limit(void **state) {
  itest_server_opts so = {.max_recv = LIMIT};
  fixture f;
  open_fixture(&f, state, &so, CRPC_OPT_COUNT_, 0);
  good_call(&f);
  for (int i = 0; i < 3; i++) {
    itest_rec rec;
    sized_call(&f, 4 * LIMIT + (size_t)i * 100000, 0, &rec);
    assert_int_equal(rec.completions, 1);
    assert_int_equal(rec.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
    good_call(&f); /* the connection remains usable */
  }
  assert_int_equal(atomic_load(&itest_server_stats(f.srv)->received), 4);
  close_fixture(&f);
}

static void over_client_recv_limit(void **state) {
  fixture f;
  open_fixture(&f, state, NULL, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, LIMIT);
  good_call(&f);
  for (int i = 0; i < 3; i++) {
    itest_rec rec;
    sized_call(&f, 10, (uint32_t)(4 * LIMIT + i * 100000), &rec);
    assert_int_equal(rec.completions, 1);
    assert_int_equal(rec.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_false(rec.has_response);
    good_call(&f);
  }
  close_fixture(&f);
}

static void over_server_send_limit(void **state) {
  itest_server_opts so = {.max_send = LIMIT};
  fixture f;
  open_fixture(&f, state, &so, CRPC_OPT_COUNT_, 0);
  itest_rec rec;
  sized_call(&f, 10, 4 * LIMIT, &rec);
  assert_int_equal(rec.completions, 1);
  assert_int_equal(rec.code, CRPC_STATUS_RESOURCE_EXHAUSTED); /* replaced by that status */
  good_call(&f);
  close_fixture(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(over_client_send_limit),
      ITEST_PER_TRANSPORT(over_server_recv_limit),
      ITEST_PER_TRANSPORT(over_client_recv_limit),
      ITEST_PER_TRANSPORT(over_server_send_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
