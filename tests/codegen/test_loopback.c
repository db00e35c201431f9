/* The generated stubs over loopback TCP, through the real runtime: a loop server with the
 * generated handler tables, a loop channel with the async __start stubs, and blocking __call
 * stubs from a second thread on a private-loop channel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "deep/dotted.crpc.h"
#include "nopkg.crpc.h"

/* --- server handlers ---------------------------------------------------------------------- */

static void on_say(crpc_server_call *call, const EchoRequest *request, void *user_data)
{
  EchoReply reply = ECHO_REPLY__INIT;
  char text[256];

  snprintf(text, sizeof(text), "%s:%s x%d", (const char *)user_data, request->text,
           (int)request->times);
  reply.text = text;
  assert_int_equal(echo__say__reply(call, &reply), 0);
}

static void on_twice(crpc_server_call *call, const Outer__Inner *request, void *user_data)
{
  Outer__Inner reply = OUTER__INNER__INIT;

  (void)user_data;
  reply.value = request->value * 2;
  assert_int_equal(echo__twice__reply(call, &reply), 0);
}

static void on_lookup(crpc_server_call *call, const Common__Types__Holder__InnerMsg *request,
                      void *user_data)
{
  Common__Types__MyThing reply = COMMON__TYPES__MY__THING__INIT;

  (void)user_data;
  reply.label = request->n_items > 0 ? request->items[0] : "";
  reply.count = (int32_t)request->n_items;
  assert_int_equal(a__b__c__d__first__lookup__reply(call, &reply), 0);
}

static void on_ping(crpc_server_call *call, const Google__Protobuf__Empty *request,
                    void *user_data)
{
  Google__Protobuf__Empty reply = GOOGLE__PROTOBUF__EMPTY__INIT;

  (void)request, (void)user_data;
  assert_int_equal(a__b__c__d__first__ping__reply(call, &reply), 0);
}

static const Echo__Handlers echo_handlers = {.say = on_say, .twice = on_twice, .unimpl = NULL};
static const A__B__C__D__First__Handlers first_handlers = {.lookup = on_lookup,
                                                           .ping = on_ping};

typedef struct fixture {
  uv_loop_t loop;
  crpc_server *server;
  char target[64];
} fixture;

static int setup(void **state)
{
  static fixture f;
  int port = 0;

  memset(&f, 0, sizeof(f));
  assert_int_equal(uv_loop_init(&f.loop), 0);
  assert_int_equal(crpc_server_new(&f.server, &f.loop), 0);
  assert_int_equal(crpc_server_listen(f.server, "tcp://127.0.0.1:0", &port), 0);
  assert_true(port > 0);
  assert_int_equal(echo__crpc_register(f.server, &echo_handlers, "srv"), 0);
  assert_int_equal(a__b__c__d__first__crpc_register(f.server, &first_handlers, NULL), 0);
  assert_int_equal(echo__crpc_register(f.server, &echo_handlers, "srv"), CRPC_EEXIST);
  snprintf(f.target, sizeof(f.target), "tcp://127.0.0.1:%d", port);
  *state = &f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;

  if (f->server != NULL)
    crpc_server_close(f->server, NULL, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  return 0;
}

/* --- async stubs on a loop channel -------------------------------------------------------- */

typedef struct async_state {
  int pending;
  crpc_channel *ch;
  char say_text[256];
  crpc_code say_code, twice_code, unimpl_code, lookup_code, ping_code;
  int64_t twice_value;
  char lookup_label[64];
  int lookup_count;
} async_state;

static void finish_one(async_state *st)
{
  if (--st->pending == 0)
    crpc_channel_close(st->ch, NULL, NULL);
}

static void say_done(const crpc_status *status, const EchoReply *response, void *user_data)
{
  async_state *st = user_data;

  st->say_code = status->code;
  if (response != NULL)
    snprintf(st->say_text, sizeof(st->say_text), "%s", response->text);
  finish_one(st);
}

static void twice_done(const crpc_status *status, const Outer__Inner *response, void *user_data)
{
  async_state *st = user_data;

  st->twice_code = status->code;
  if (response != NULL)
    st->twice_value = response->value;
  finish_one(st);
}

static void unimpl_done(const crpc_status *status, const EchoReply *response, void *user_data)
{
  async_state *st = user_data;

  st->unimpl_code = status->code;
  assert_null(response);
  assert_non_null(status->message);
  assert_non_null(strstr(status->message, "Echo/Unimpl"));
  finish_one(st);
}

static void lookup_done(const crpc_status *status, const Common__Types__MyThing *response,
                        void *user_data)
{
  async_state *st = user_data;

  st->lookup_code = status->code;
  if (response != NULL) {
    snprintf(st->lookup_label, sizeof(st->lookup_label), "%s", response->label);
    st->lookup_count = response->count;
  }
  finish_one(st);
}

static void ping_done(const crpc_status *status, const Google__Protobuf__Empty *response,
                      void *user_data)
{
  async_state *st = user_data;

  st->ping_code = status->code;
  assert_non_null(response);
  finish_one(st);
}

static void async_stubs(void **state)
{
  fixture *f = *state;
  async_state st = {.pending = 5};
  EchoRequest say = ECHO_REQUEST__INIT;
  Outer__Inner twice = OUTER__INNER__INIT;
  Common__Types__Holder__InnerMsg lookup = COMMON__TYPES__HOLDER__INNER__MSG__INIT;
  Google__Protobuf__Empty ping = GOOGLE__PROTOBUF__EMPTY__INIT;
  char *items[] = {"first", "second"};
  crpc_call *call = NULL;

  say.text = "hi";
  say.times = 3;
  twice.value = 21;
  lookup.n_items = 2;
  lookup.items = items;
  assert_int_equal(crpc_channel_new(&st.ch, &f->loop, f->target), 0);
  assert_int_equal(echo__say__start(st.ch, &say, NULL, say_done, &st, &call), 0);
  assert_non_null(call);
  assert_int_equal(echo__twice__start(st.ch, &twice, NULL, twice_done, &st, NULL), 0);
  assert_int_equal(echo__unimpl__start(st.ch, &say, NULL, unimpl_done, &st, NULL), 0);
  assert_int_equal(a__b__c__d__first__lookup__start(st.ch, &lookup, NULL, lookup_done, &st, NULL),
                   0);
  assert_int_equal(a__b__c__d__first__ping__start(st.ch, &ping, NULL, ping_done, &st, NULL), 0);
  assert_int_equal(echo__say__start(st.ch, &say, NULL, NULL, &st, NULL), CRPC_EINVAL);
  while (st.pending > 0)
    uv_run(&f->loop, UV_RUN_ONCE);

  assert_int_equal(st.say_code, CRPC_STATUS_OK);
  assert_string_equal(st.say_text, "srv:hi x3");
  assert_int_equal(st.twice_code, CRPC_STATUS_OK);
  assert_int_equal(st.twice_value, 42);
  assert_int_equal(st.unimpl_code, CRPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(st.lookup_code, CRPC_STATUS_OK);
  assert_string_equal(st.lookup_label, "first");
  assert_int_equal(st.lookup_count, 2);
  assert_int_equal(st.ping_code, CRPC_STATUS_OK);
}

/* --- blocking stubs from another thread --------------------------------------------------- */

typedef struct blocking_state {
  const char *target;
  uv_async_t done;
  int rc_say, rc_unimpl;
  crpc_code say_code, unimpl_code;
  char say_text[256];
} blocking_state;

static void client_thread(void *arg)
{
  blocking_state *st = arg;
  crpc_channel *ch = NULL;
  EchoRequest req = ECHO_REQUEST__INIT;
  EchoReply *reply = NULL;
  crpc_status status = {.code = CRPC_STATUS_OK};
  crpc_call_opts opts = {.timeout_ms = 10000};

  req.text = "blocking";
  req.times = 1;
  if (crpc_channel_new(&ch, NULL, st->target) == 0) {
    st->rc_say = echo__say__call(ch, &req, &reply, &status, &opts);
    st->say_code = status.code;
    if (reply != NULL) {
      snprintf(st->say_text, sizeof(st->say_text), "%s", reply->text);
      echo_reply__free_unpacked(reply, NULL);
    }
    crpc_status_reset(&status);
    reply = NULL;
    st->rc_unimpl = echo__unimpl__call(ch, &req, &reply, &status, NULL);
    st->unimpl_code = status.code;
    if (reply != NULL)
      echo_reply__free_unpacked(reply, NULL);
    crpc_status_reset(&status);
    crpc_channel_close(ch, NULL, NULL);
  }
  uv_async_send(&st->done);
}

static void on_client_done(uv_async_t *handle)
{
  uv_close((uv_handle_t *)handle, NULL);
}

static void blocking_stubs(void **state)
{
  fixture *f = *state;
  blocking_state st = {.target = f->target, .rc_say = -1, .rc_unimpl = -1};
  uv_thread_t thread;

  assert_int_equal(uv_async_init(&f->loop, &st.done, on_client_done), 0);
  assert_int_equal(uv_thread_create(&thread, client_thread, &st), 0);
  while (!uv_is_closing((uv_handle_t *)&st.done))
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(uv_thread_join(&thread), 0);
  uv_run(&f->loop, UV_RUN_NOWAIT); /* the async handle's close */

  assert_int_equal(st.rc_say, 0);
  assert_int_equal(st.say_code, CRPC_STATUS_OK);
  assert_string_equal(st.say_text, "srv:blocking x1");
  assert_int_equal(st.rc_unimpl, 0);
  assert_int_equal(st.unimpl_code, CRPC_STATUS_UNIMPLEMENTED);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(async_stubs, setup, teardown),
      cmocka_unit_test_setup_teardown(blocking_stubs, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
