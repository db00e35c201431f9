/* idl/crpc/status.proto carries rich error details end to end: a handler fails a call with a
 * crpc.StatusDetails holding a crpc.BadRequest in a google.protobuf.Any; the client decodes it
 * from crpc_status.details. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "crpc/status.pb-c.h"
#include "details_test.crpc.h"

#define BAD_REQUEST_URL "type.googleapis.com/crpc.BadRequest"

static void get(crpc_server_call *call, const Idltest__Req *req, void *ud) {
  (void)ud;
  Crpc__BadRequest__FieldViolation v = CRPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
  v.field = "key";
  v.description = req->key[0] ? "unknown key" : "must not be empty";
  Crpc__BadRequest__FieldViolation *vs[] = {&v};
  Crpc__BadRequest bad = CRPC__BAD_REQUEST__INIT;
  bad.n_field_violations = 1;
  bad.field_violations = vs;
  uint8_t bad_bytes[256];
  size_t bad_len = crpc__bad_request__pack(&bad, bad_bytes);

  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = BAD_REQUEST_URL;
  any.value.data = bad_bytes;
  any.value.len = bad_len;
  Google__Protobuf__Any *anys[] = {&any};
  Crpc__StatusDetails details = CRPC__STATUS_DETAILS__INIT;
  details.code = CRPC_STATUS_INVALID_ARGUMENT;
  details.message = "bad key";
  details.n_details = 1;
  details.details = anys;
  uint8_t buf[512];
  size_t len = crpc__status_details__pack(&details, buf);
  assert_int_equal(crpc_server_call_fail_details(call, CRPC_STATUS_INVALID_ARGUMENT, "bad key", buf, len), 0);
}

static const Idltest__Store__Handlers handlers = {.get = get};

typedef struct {
  int done;
  crpc_server *srv;
  crpc_channel *ch;
} env;

static void on_get(const crpc_status *st, const Idltest__Resp *resp, void *ud) {
  env *e = ud;
  assert_null(resp);
  assert_int_equal(st->code, CRPC_STATUS_INVALID_ARGUMENT);
  assert_string_equal(st->message, "bad key");
  assert_non_null(st->details);
  Crpc__StatusDetails *d = crpc__status_details__unpack(NULL, st->details_len, st->details);
  assert_non_null(d);
  assert_int_equal(d->code, CRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(d->n_details, 1);
  assert_string_equal(d->details[0]->type_url, BAD_REQUEST_URL);
  Crpc__BadRequest *bad =
      crpc__bad_request__unpack(NULL, d->details[0]->value.len, d->details[0]->value.data);
  assert_non_null(bad);
  assert_int_equal(bad->n_field_violations, 1);
  assert_string_equal(bad->field_violations[0]->field, "key");
  assert_string_equal(bad->field_violations[0]->description, "must not be empty");
  crpc__bad_request__free_unpacked(bad, NULL);
  crpc__status_details__free_unpacked(d, NULL);
  e->done++;
  crpc_channel_close(e->ch, NULL, NULL);
  crpc_server_close(e->srv, NULL, NULL);
}

static void test_details_round_trip(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  env e = {0};
  int port;
  assert_int_equal(crpc_server_new(&e.srv, &loop), 0);
  assert_int_equal(idltest__store__crpc_register(e.srv, &handlers, NULL), 0);
  assert_int_equal(crpc_server_listen(e.srv, "tcp://127.0.0.1:0", &port), 0);
  char target[64];
  snprintf(target, sizeof target, "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&e.ch, &loop, target), 0);
  Idltest__Req req = IDLTEST__REQ__INIT;
  req.key = "";
  crpc_call_opts opts = {.timeout_ms = 10000};
  assert_int_equal(idltest__store__get__start(e.ch, &req, &opts, on_get, &e, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(e.done, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_details_round_trip)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
