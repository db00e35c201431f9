/* protobuf-c's file options through protoc-gen-crpc and crpc_generate() (protos/cpkg/):
 *  - c_package: the generated names are the ones protobuf-c defines (AcmeC__Req, not
 *    Acme__V1__Req), also for nested types, for types of an import with a c_package of its own
 *    (AcmeBase__Ping), for a dotted c_package (Acme__Dot__...) and an empty one (Plain); the wire
 *    names stay the proto package's;
 *  - no_generate: protobuf-c/protobuf-c.proto (imported for the options) and hidden.proto (listed)
 *    get no code, and everything links without them;
 *  - the __METHOD macros are constant expressions: they initialise the statics below;
 * and the renamed stubs, linked with protoc-c's output, answer calls over loopback TCP. This file
 * compiling is half the test: with the proto package's names it would not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "cpkg/dotted.crpc.h"
#include "cpkg/nopkg.crpc.h"
#include "cpkg/svc.crpc.h"

/* Static initialisers: each macro must be an address constant. */
static const crpc_method_desc *const get_method = ACME_C__SVC__GET__METHOD;
static const crpc_method_desc *const svc_methods[] = {
    ACME_C__SVC__GET__METHOD, ACME_C__SVC__TWICE__METHOD, ACME_C__SVC__WATCH__METHOD};
static const crpc_method_desc *const dot_echo = ACME__DOT__DOT__ECHO__METHOD;
static const crpc_method_desc *const bare_echo = BARE__ECHO__METHOD;

static void names_and_tables(void **state)
{
  const crpc_service_desc *s = &acme_c__svc__crpc_service;

  (void)state;
  assert_string_equal(s->full_name, "acme.v1.Svc"); /* the wire keeps the proto package */
  assert_int_equal(s->n_methods, 3);
  for (size_t i = 0; i < 3; i++)
    assert_ptr_equal(svc_methods[i], &s->methods[i]);
  assert_ptr_equal(get_method, &s->methods[0]);
  assert_string_equal(get_method->full_name, "acme.v1.Svc/Get");
  assert_ptr_equal(get_method->input, &acme_c__req__descriptor);
  assert_ptr_equal(get_method->output, &acme_base__ping__descriptor);
  assert_ptr_equal(s->methods[1].input, &acme_c__req__sub__descriptor);
  assert_ptr_equal(s->methods[2].input, &acme_base__ping__inner__descriptor);
  assert_int_equal(s->methods[2].flags, CRPC_METHOD_SERVER_STREAMING);
  assert_string_equal(acme_c__req__descriptor.name, "acme.v1.Req");

  assert_ptr_equal(dot_echo, &acme__dot__dot__crpc_service.methods[0]);
  assert_string_equal(dot_echo->full_name, "acme.v3.Dot/Echo");
  assert_ptr_equal(dot_echo->input, &acme__dot__msg__descriptor);
  assert_ptr_equal(bare_echo, &bare__crpc_service.methods[0]);
  assert_string_equal(bare_echo->full_name, "acme.v4.Bare/Echo");
  assert_ptr_equal(bare_echo->input, &plain__descriptor);
}

/* --- end to end ------------------------------------------------------------------------------ */

static void on_get(crpc_server_call *call, const AcmeC__Req *request, void *user_data)
{
  AcmeBase__Ping reply = ACME_BASE__PING__INIT;
  AcmeBase__Ping__Inner inner = ACME_BASE__PING__INNER__INIT;

  (void)user_data;
  reply.n = request->ping != NULL ? request->ping->n + 1 : -1;
  inner.kind = ACME_BASE__PING__INNER__KIND__KIND_B;
  reply.inner = &inner;
  reply.color = ACME_BASE__COLOR__COLOR_BLUE;
  assert_int_equal(acme_c__svc__get__reply(call, &reply), 0);
}

static void on_twice(crpc_server_call *call, const AcmeC__Req__Sub *request, void *user_data)
{
  AcmeC__Req__Sub reply = ACME_C__REQ__SUB__INIT;

  (void)user_data;
  reply.x = 2 * request->x;
  assert_int_equal(acme_c__svc__twice__reply(call, &reply), 0);
}

static void on_watch(crpc_server_call *call, const AcmeBase__Ping__Inner *request,
                     void *user_data)
{
  (void)request, (void)user_data;
  assert_int_equal(crpc_server_call_end(call, CRPC_STATUS_OK, NULL), 0);
}

static void on_dot(crpc_server_call *call, const Acme__Dot__Msg *request, void *user_data)
{
  (void)user_data;
  assert_int_equal(acme__dot__dot__echo__reply(call, request), 0);
}

static void on_bare(crpc_server_call *call, const Plain *request, void *user_data)
{
  (void)user_data;
  assert_int_equal(bare__echo__reply(call, request), 0);
}

static const AcmeC__Svc__Handlers svc_handlers = {
    .get = on_get, .twice = on_twice, .watch = on_watch};
static const Acme__Dot__Dot__Handlers dot_handlers = {.echo = on_dot};
static const Bare__Handlers bare_handlers = {.echo = on_bare};

typedef struct e2e {
  crpc_channel *ch;
  int pending;
  crpc_code get_code, twice_code, dot_code, bare_code;
  int32_t get_n, twice_x, bare_v;
  int get_kind, get_color;
  char dot_text[32];
} e2e;

static void one_done(e2e *st)
{
  if (--st->pending == 0)
    crpc_channel_close(st->ch, NULL, NULL);
}

static void get_done(const crpc_status *status, const AcmeBase__Ping *response, void *ud)
{
  e2e *st = ud;

  st->get_code = status->code;
  if (response != NULL) {
    st->get_n = response->n;
    st->get_kind = response->inner != NULL ? (int)response->inner->kind : -1;
    st->get_color = (int)response->color;
  }
  one_done(st);
}

static void twice_done(const crpc_status *status, const AcmeC__Req__Sub *response, void *ud)
{
  e2e *st = ud;

  st->twice_code = status->code;
  if (response != NULL)
    st->twice_x = response->x;
  one_done(st);
}

static void dot_done(const crpc_status *status, const Acme__Dot__Msg *response, void *ud)
{
  e2e *st = ud;

  st->dot_code = status->code;
  if (response != NULL && response->text != NULL)
    snprintf(st->dot_text, sizeof(st->dot_text), "%s", response->text);
  one_done(st);
}

static void bare_done(const crpc_status *status, const Plain *response, void *ud)
{
  e2e *st = ud;

  st->bare_code = status->code;
  if (response != NULL)
    st->bare_v = response->v;
  one_done(st);
}

static void calls_over_loopback(void **state)
{
  uv_loop_t loop;
  crpc_server *srv;
  char target[64];
  int port = 0;
  e2e st;
  AcmeC__Req req = ACME_C__REQ__INIT;
  AcmeBase__Ping ping = ACME_BASE__PING__INIT;
  AcmeC__Req__Sub sub = ACME_C__REQ__SUB__INIT;
  Acme__Dot__Msg msg = ACME__DOT__MSG__INIT;
  Plain plain = PLAIN__INIT;

  (void)state;
  memset(&st, 0, sizeof(st));
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(crpc_server_new(&srv, &loop), 0);
  assert_int_equal(crpc_server_listen(srv, "tcp://127.0.0.1:0", &port), 0);
  assert_int_equal(acme_c__svc__crpc_register(srv, &svc_handlers, NULL), 0);
  assert_int_equal(acme__dot__dot__crpc_register(srv, &dot_handlers, NULL), 0);
  assert_int_equal(bare__crpc_register(srv, &bare_handlers, NULL), 0);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&st.ch, &loop, target), 0);

  ping.n = 41;
  req.ping = &ping;
  sub.x = 21;
  msg.text = "dotted";
  plain.v = 7;
  plain.has_v = 1;
  st.pending = 4;
  assert_int_equal(acme_c__svc__get__start(st.ch, &req, NULL, get_done, &st, NULL), 0);
  assert_int_equal(acme_c__svc__twice__start(st.ch, &sub, NULL, twice_done, &st, NULL), 0);
  assert_int_equal(acme__dot__dot__echo__start(st.ch, &msg, NULL, dot_done, &st, NULL), 0);
  assert_int_equal(bare__echo__start(st.ch, &plain, NULL, bare_done, &st, NULL), 0);
  /* The channel closes once the four calls are done; then the server. */
  while (st.pending > 0)
    assert_true(uv_run(&loop, UV_RUN_ONCE) != 0 || st.pending == 0);
  crpc_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);

  assert_int_equal(st.get_code, CRPC_STATUS_OK);
  assert_int_equal(st.get_n, 42);
  assert_int_equal(st.get_kind, ACME_BASE__PING__INNER__KIND__KIND_B);
  assert_int_equal(st.get_color, ACME_BASE__COLOR__COLOR_BLUE);
  assert_int_equal(st.twice_code, CRPC_STATUS_OK);
  assert_int_equal(st.twice_x, 42);
  assert_int_equal(st.dot_code, CRPC_STATUS_OK);
  assert_string_equal(st.dot_text, "dotted");
  assert_int_equal(st.bare_code, CRPC_STATUS_OK);
  assert_int_equal(st.bare_v, 7);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_and_tables),
      cmocka_unit_test(calls_over_loopback),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
