/* API misuse returns the documented errors (crpc/channel.h, crpc/server.h), and nothing runs
 * that should not: a refused async call never calls its callback. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

static void never_cb(crpc_call *call, const crpc_status *st, const ProtobufCMessage *resp,
                     void *ud) {
  (void)call;
  (void)st;
  (void)resp;
  (*(int *)ud)++;
}

static void channel_misuse(void **state) {
  itest_server *srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  const char *ep = itest_server_endpoint(srv);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch = NULL;

  /* crpc_channel_new */
  assert_int_equal(crpc_channel_new(NULL, &loop, ep), CRPC_EINVAL);
  assert_int_equal(crpc_channel_new(&ch, &loop, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_new(&ch, &loop, "http://example.com"), CRPC_EENDPOINT);
  assert_int_equal(crpc_channel_new(&ch, &loop, "tcp://127.0.0.1"), CRPC_EENDPOINT);
  assert_int_equal(crpc_channel_new(&ch, &loop, ep), 0);
  assert_string_equal(crpc_channel_target(ch), ep);

  /* options */
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_COUNT_, 1), CRPC_EINVAL);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_CONNECTIONS, 5), CRPC_EINVAL);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_CONNECT_TIMEOUT_MS, 0), CRPC_EINVAL);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, -1), CRPC_EINVAL);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_CONNECT_TIMEOUT_MS, 5000), 0);

  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  Itest__Garbage wrong = ITEST__GARBAGE__INIT;
  const crpc_method_desc *m = ITEST__TEST__ECHO__METHOD;
  int cb_runs = 0;
  crpc_call_opts neg = {.timeout_ms = -1};
  crpc_call *call = (crpc_call *)&cb_runs;

  /* async: refused calls never call back */
  assert_int_equal(crpc_channel_unary_async(NULL, m, &req.base, NULL, never_cb, &cb_runs, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary_async(ch, NULL, &req.base, NULL, never_cb, &cb_runs, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary_async(ch, m, NULL, NULL, never_cb, &cb_runs, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary_async(ch, m, &req.base, NULL, NULL, &cb_runs, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary_async(ch, m, &req.base, &neg, never_cb, &cb_runs, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary_async(ch, m, &wrong.base, NULL, never_cb, &cb_runs, &call), CRPC_ETYPE);

  /* blocking on the loop thread */
  ProtobufCMessage *resp = (ProtobufCMessage *)&req;
  crpc_status st = {0};
  assert_int_equal(crpc_channel_unary(ch, m, &req.base, &resp, &st, NULL), CRPC_EDEADLK);
  assert_null(resp);
  crpc_status_reset(&st);

  /* a good call freezes the options */
  itest_rec rec = {0};
  assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &rec, NULL), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_CONNECT_TIMEOUT_MS, 6000), CRPC_ESTATE);
  itest_recs one = {&rec, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  itest_assert_echo(&rec, 1);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_BACKOFF_MAX_MS, 6000), CRPC_ESTATE);
  itest_run_for(&loop, 10);
  assert_int_equal(cb_runs, 0);
  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);

  /* private-loop channel */
  assert_int_equal(crpc_channel_new(&ch, NULL, ep), 0);
  assert_int_equal(crpc_channel_unary_async(ch, m, &req.base, NULL, never_cb, &cb_runs, NULL), CRPC_ENOTSUP);
  assert_int_equal(crpc_channel_unary(NULL, m, &req.base, &resp, &st, NULL), CRPC_EINVAL);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, NULL, &req.base, &resp, &st, NULL), CRPC_EINVAL);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, m, NULL, &resp, &st, NULL), CRPC_EINVAL);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, m, &req.base, NULL, &st, NULL), CRPC_EINVAL);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, m, &req.base, &resp, NULL, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_channel_unary(ch, m, &req.base, &resp, &st, &neg), CRPC_EINVAL);
  assert_null(resp);
  assert_int_equal(st.code, CRPC_STATUS_INTERNAL);
  assert_non_null(st.message);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, m, &wrong.base, &resp, &st, NULL), CRPC_ETYPE);
  assert_null(resp);
  assert_int_equal(st.code, CRPC_STATUS_INTERNAL);
  assert_non_null(st.message);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_unary(ch, m, &req.base, &resp, &st, NULL), 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(resp, NULL);
  crpc_status_reset(&st);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_CONNECT_TIMEOUT_MS, 6000), CRPC_ESTATE);
  crpc_channel_close(ch, NULL, NULL);
  assert_int_equal(cb_runs, 0);
  itest_server_stop(srv);
}

static int handled;
static void noop_handler(crpc_server_call *call, const Itest__EchoRequest *req, void *ud) {
  (void)req;
  (void)ud;
  handled++;
  crpc_server_call_fail(call, CRPC_STATUS_UNAVAILABLE, "noop");
}
static const Itest__Test__Handlers noop_handlers = {.echo = noop_handler};
static const Itest__Unserved__Handlers no_handlers = {0};

static void server_misuse(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_server *srv;
  assert_int_equal(crpc_server_new(NULL, &loop), CRPC_EINVAL);
  assert_int_equal(crpc_server_new(&srv, &loop), 0);
  assert_ptr_equal(crpc_server_loop(srv), &loop);
  assert_int_equal(crpc_server_run(srv), CRPC_ENOTSUP); /* a loop server */

  assert_int_equal(crpc_server_register(NULL, &itest__test__crpc_service, &noop_handlers, NULL),
                   CRPC_EINVAL);
  assert_int_equal(crpc_server_register(srv, NULL, &noop_handlers, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_server_register(srv, &itest__test__crpc_service, NULL, NULL), CRPC_EINVAL);
  crpc_service_desc future = itest__test__crpc_service;
  future.abi = CRPC_GENERATED_ABI + 1;
  assert_int_equal(crpc_server_register(srv, &future, &noop_handlers, NULL), CRPC_EABI);
  assert_int_equal(itest__test__crpc_register(srv, &noop_handlers, NULL), 0);
  assert_int_equal(itest__test__crpc_register(srv, &noop_handlers, NULL), CRPC_EEXIST);
  assert_int_equal(
      crpc_server_register(srv, &itest__test__crpc_service, &itest_echo_handlers, NULL),
      CRPC_EEXIST);

  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_COUNT_, 1), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_CONNECT_TIMEOUT_MS, 100), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_MAX_CONNECTIONS, 0), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_MAX_CONNECTIONS, 100), 0);

  assert_int_equal(crpc_server_listen(NULL, "tcp://127.0.0.1:0", NULL), CRPC_EINVAL);
  assert_int_equal(crpc_server_listen(srv, NULL, NULL), CRPC_EINVAL);
  assert_int_equal(crpc_server_listen(srv, "udp://127.0.0.1:0", NULL), CRPC_EENDPOINT);
  char ep[256];
  itest_unused_endpoint(t, ep, sizeof ep);
  if (t->listen) snprintf(ep, sizeof ep, "%s", t->listen);
  int port = -1;
  assert_int_equal(crpc_server_listen(srv, ep, &port), 0);
  if (t->listen) {
    assert_true(port > 0);
    /* the same port again: in use */
    char again[256];
    snprintf(again, sizeof again, "%.*s:%d", (int)(strrchr(ep, ':') - ep), ep, port);
    assert_int_equal(crpc_server_listen(srv, again, NULL), UV_EADDRINUSE);
  } else {
    assert_int_equal(port, 0);
    assert_int_equal(crpc_server_listen(srv, ep, NULL), UV_EADDRINUSE); /* path exists */
    unlink(ep + 5);
  }
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_MAX_CONNECTIONS, 200), CRPC_ESTATE);
  /* registering after listening is allowed */
  assert_int_equal(itest__unserved__crpc_register(srv, &no_handlers, NULL), 0);
  crpc_server_close(srv, NULL, NULL);
  itest_loop_finish(&loop);
  assert_int_equal(handled, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(channel_misuse),
      ITEST_PER_TRANSPORT(server_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
