/* What a call's status says: handler errors reach the client with their code and text; unknown
 * methods are UNIMPLEMENTED; a request that does not decode is INTERNAL and the connection goes
 * on; a handler may answer later; server-side API misuse ends the call INTERNAL. */
#include <stdio.h>
#include <string.h>

#include "itest.h"

typedef struct client {
  uv_loop_t loop;
  crpc_channel *ch;
  itest_server *srv;
} client;

static void client_open(client *c, void **state) {
  c->srv = itest_server_start(ITEST_TRANSPORT(state), NULL);
  uv_loop_init(&c->loop);
  assert_int_equal(crpc_channel_new(&c->ch, &c->loop, itest_server_endpoint(c->srv)), 0);
}

static void client_close(client *c) {
  itest_channel_close(&c->loop, c->ch);
  itest_loop_finish(&c->loop);
  itest_server_stop(c->srv);
}

/* One typed async call of itest.Test/Echo; waits (bounded) for its completion. */
static void call_and_wait(client *c, const Itest__EchoRequest *req, itest_rec *rec) {
  memset(rec, 0, sizeof *rec);
  assert_int_equal(itest__test__echo__start(c->ch, req, NULL, itest_rec_done, rec, NULL), 0);
  itest_recs one = {rec, 1};
  assert_true(itest_run_until(&c->loop, itest_all_done, &one, 20000));
}

/* An untyped async call: completion recorded in rec (response ignored unless it is an
 * EchoReply). */
static void untyped_done(crpc_call *call, const crpc_status *st, const ProtobufCMessage *resp,
                         void *ud) {
  (void)call;
  const Itest__EchoReply *r = NULL;
  if (resp && resp->descriptor == &itest__echo_reply__descriptor) r = (const Itest__EchoReply *)resp;
  itest_rec_done(st, r, ud);
}

static void call_method_and_wait(client *c, const crpc_method_desc *method,
                                 const ProtobufCMessage *req, itest_rec *rec) {
  memset(rec, 0, sizeof *rec);
  assert_int_equal(crpc_channel_unary_async(c->ch, method, req, NULL, untyped_done, rec, NULL), 0);
  itest_recs one = {rec, 1};
  assert_true(itest_run_until(&c->loop, itest_all_done, &one, 20000));
}

static void good_call(client *c, uint32_t seq) {
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, seq, buf, sizeof buf);
  itest_rec rec;
  call_and_wait(c, &req, &rec);
  itest_assert_echo(&rec, seq);
}

static void handler_status_reaches_client(void **state) {
  client c;
  client_open(&c, state);
  const crpc_code codes[] = {CRPC_STATUS_CANCELLED,         CRPC_STATUS_UNKNOWN,
                             CRPC_STATUS_INVALID_ARGUMENT,  CRPC_STATUS_DEADLINE_EXCEEDED,
                             CRPC_STATUS_NOT_FOUND,         CRPC_STATUS_ALREADY_EXISTS,
                             CRPC_STATUS_PERMISSION_DENIED, CRPC_STATUS_RESOURCE_EXHAUSTED,
                             CRPC_STATUS_FAILED_PRECONDITION, CRPC_STATUS_ABORTED,
                             CRPC_STATUS_OUT_OF_RANGE,      CRPC_STATUS_UNIMPLEMENTED,
                             CRPC_STATUS_INTERNAL,          CRPC_STATUS_UNAVAILABLE,
                             CRPC_STATUS_DATA_LOSS,         CRPC_STATUS_UNAUTHENTICATED,
                             (crpc_code)77 /* outside the table: passed through */};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    char buf[32], text[64];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    snprintf(text, sizeof text, "failed on purpose: %s (%d)", crpc_code_name(codes[i]), codes[i]);
    req.fail_code = (uint32_t)codes[i];
    req.fail_message = text;
    itest_rec rec;
    call_and_wait(&c, &req, &rec);
    assert_int_equal(rec.completions, 1);
    assert_int_equal(rec.code, codes[i]);
    assert_string_equal(rec.message, text);
    assert_false(rec.has_response);
  }
  /* An empty message is legal too. */
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 99, buf, sizeof buf);
  req.fail_code = CRPC_STATUS_NOT_FOUND;
  itest_rec rec;
  call_and_wait(&c, &req, &rec);
  assert_int_equal(rec.code, CRPC_STATUS_NOT_FOUND);
  good_call(&c, 100);
  client_close(&c);
}

static void unknown_method_is_unimplemented(void **state) {
  client c;
  client_open(&c, state);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 1, buf, sizeof buf);
  itest_rec rec;

  /* A service the server never registered. */
  call_method_and_wait(&c, ITEST__UNSERVED__ECHO__METHOD, &req.base, &rec);
  assert_int_equal(rec.completions, 1);
  assert_int_equal(rec.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(rec.message, "itest.Unserved/Echo"));

  /* A method the registered service lacks. */
  crpc_method_desc nope = *ITEST__TEST__ECHO__METHOD;
  nope.name = "Nope";
  nope.full_name = "itest.Test/Nope";
  call_method_and_wait(&c, &nope, &req.base, &rec);
  assert_int_equal(rec.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(rec.message, "itest.Test/Nope"));

  good_call(&c, 2); /* the connection goes on */
  client_close(&c);
}

static void undecodable_request_is_internal(void **state) {
  client c;
  client_open(&c, state);
  /* Same method name, another input type: field 1 arrives as fixed32 where the server expects
   * bytes, which protobuf-c refuses to unpack. */
  crpc_method_desc liar = *ITEST__TEST__ECHO__METHOD;
  liar.input = &itest__garbage__descriptor;
  Itest__Garbage g = ITEST__GARBAGE__INIT;
  g.payload = 0xdeadbeef;
  itest_rec rec;
  for (int i = 0; i < 3; i++) {
    call_method_and_wait(&c, &liar, &g.base, &rec);
    assert_int_equal(rec.completions, 1);
    assert_int_equal(rec.code, CRPC_STATUS_INTERNAL);
    assert_true(rec.message[0] != '\0');
    good_call(&c, (uint32_t)i); /* the connection stays usable */
  }
  assert_int_equal(atomic_load(&itest_server_stats(c.srv)->received), 3); /* handler never saw it */
  client_close(&c);
}

static void handler_replies_later(void **state) {
  client c;
  client_open(&c, state);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 7, buf, sizeof buf);
  req.delay_ms = 150;
  itest_rec rec;
  uint64_t t0 = ts_now_ms();
  call_and_wait(&c, &req, &rec);
  uint64_t took = ts_now_ms() - t0;
  itest_assert_echo(&rec, 7);
  assert_true(took >= 140);
  /* A late failure too. */
  req.fail_code = CRPC_STATUS_ABORTED;
  req.fail_message = "late failure";
  call_and_wait(&c, &req, &rec);
  assert_int_equal(rec.code, CRPC_STATUS_ABORTED);
  assert_string_equal(rec.message, "late failure");
  client_close(&c);
}

static void server_api_misuse_ends_call_internal(void **state) {
  client c;
  client_open(&c, state);
  for (uint32_t misuse = 1; misuse <= 2; misuse++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, misuse, buf, sizeof buf);
    req.misuse = misuse;
    itest_rec rec;
    call_and_wait(&c, &req, &rec);
    assert_int_equal(rec.completions, 1);
    assert_int_equal(rec.code, CRPC_STATUS_INTERNAL);
    assert_false(rec.has_response);
  }
  good_call(&c, 3);
  assert_int_equal(atomic_load(&itest_server_stats(c.srv)->misuse_ok), 2);
  assert_int_equal(atomic_load(&itest_server_stats(c.srv)->misuse_bad), 0);
  client_close(&c);
}

/* A second finish of a server call (from inside the handler, while the handle is valid) returns
 * CRPC_ESTATE and leaves the call as the first one ended it. */
static void server_second_finish_is_estate(void **state) {
  client c;
  client_open(&c, state);
  for (uint32_t misuse = 3; misuse <= 4; misuse++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, misuse, buf, sizeof buf);
    req.misuse = misuse;
    itest_rec rec;
    call_and_wait(&c, &req, &rec);
    assert_int_equal(rec.completions, 1);
    if (misuse == 3) {
      assert_int_equal(rec.code, CRPC_STATUS_OK);
      assert_true(rec.has_response);
    } else {
      assert_int_equal(rec.code, CRPC_STATUS_ABORTED);
      assert_string_equal(rec.message, "first");
      assert_false(rec.has_response);
    }
  }
  good_call(&c, 5);
  assert_int_equal(atomic_load(&itest_server_stats(c.srv)->misuse_ok), 2);
  assert_int_equal(atomic_load(&itest_server_stats(c.srv)->misuse_bad), 0);
  client_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      ITEST_PER_TRANSPORT(handler_status_reaches_client),
      ITEST_PER_TRANSPORT(unknown_method_is_unimplemented),
      ITEST_PER_TRANSPORT(undecodable_request_is_internal),
      ITEST_PER_TRANSPORT(handler_replies_later),
      ITEST_PER_TRANSPORT(server_api_misuse_ends_call_internal),
      ITEST_PER_TRANSPORT(server_second_finish_is_estate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
