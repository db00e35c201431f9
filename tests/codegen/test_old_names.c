/* Code written against the streaming stubs' old names (protoc-gen-crpc 0.1.0: __send,
 * __write_wait, __read_wait, __finish) still compiles, with -Werror, and works: a bidi stream of
 * deep/dotted.proto's First.Chat over loopback TCP, server and blocking client using only the
 * old names, which the generated header keeps as deprecated aliases of __server_write,
 * __send_wait, __recv_wait and __finish_wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "deep/dotted.crpc.h"

#define N_MESSAGES 3

/* --- server: echoes every message back with the old __send, ends OK at the client's end ---- */

static void on_chat_read(crpc_server_call *call, const A__B__C__D__Local *msg, void *user_data)
{
  A__B__C__D__Local echo = A__B__C__D__LOCAL__INIT;
  char text[64];

  (void)user_data;
  if (msg == NULL) {
    (void)crpc_server_call_end(call, CRPC_STATUS_OK, NULL);
    return;
  }
  snprintf(text, sizeof(text), "echo:%s", msg->name != NULL ? msg->name : "");
  echo.name = text;
  if (a__b__c__d__first__chat__send(call, &echo) != 0)
    (void)crpc_server_call_end(call, CRPC_STATUS_INTERNAL, "send failed");
}

static void on_chat(crpc_server_call *call, void *user_data)
{
  if (a__b__c__d__first__chat__set_reader(call, on_chat_read, NULL, user_data, 1) != 0)
    (void)crpc_server_call_end(call, CRPC_STATUS_INTERNAL, "set_reader failed");
}

static const A__B__C__D__First__Handlers handlers = {.chat = on_chat};

/* --- client: a blocking stream from another thread, with the old names --------------------- */

typedef struct client_state {
  char target[64];
  uv_async_t done;
  int rc_open, rc_finish, n_written, n_read, rc_last_read;
  crpc_code code;
  char texts[N_MESSAGES][64];
} client_state;

static void client_thread(void *arg)
{
  client_state *st = arg;
  crpc_channel *ch = NULL;
  crpc_stream *s = NULL;
  crpc_status status = {.code = CRPC_STATUS_OK};
  crpc_call_opts opts = {.timeout_ms = 10000};
  A__B__C__D__Local *got = NULL;

  if (crpc_channel_new(&ch, NULL, st->target) != 0)
    goto out;
  st->rc_open = a__b__c__d__first__chat__open(ch, &opts, &s);
  if (st->rc_open == 0) {
    for (int i = 0; i < N_MESSAGES; i++) {
      A__B__C__D__Local msg = A__B__C__D__LOCAL__INIT;
      char name[16];

      snprintf(name, sizeof(name), "m%d", i);
      msg.name = name;
      if (a__b__c__d__first__chat__write_wait(s, &msg) == 0)
        st->n_written++;
    }
    (void)crpc_stream_close_send(s);
    while ((st->rc_last_read = a__b__c__d__first__chat__read_wait(s, &got)) == 1) {
      if (st->n_read < N_MESSAGES)
        snprintf(st->texts[st->n_read], sizeof(st->texts[0]), "%s",
                 got->name != NULL ? got->name : "");
      st->n_read++;
      a__b__c__d__local__free_unpacked(got, NULL);
      got = NULL;
    }
    st->rc_finish = a__b__c__d__first__chat__finish(s, &status);
    st->code = status.code;
    crpc_status_reset(&status);
  }
  crpc_channel_close(ch, NULL, NULL);
out:
  uv_async_send(&st->done);
}

static void on_client_done(uv_async_t *handle)
{
  uv_close((uv_handle_t *)handle, NULL);
}

static void old_names_still_work(void **state)
{
  static client_state st;
  uv_loop_t loop;
  crpc_server *server = NULL;
  uv_thread_t thread;
  int port = 0;

  (void)state;
  memset(&st, 0, sizeof(st));
  st.rc_open = st.rc_finish = st.rc_last_read = -1;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(crpc_server_new(&server, &loop), 0);
  assert_int_equal(crpc_server_listen(server, "tcp://127.0.0.1:0", &port), 0);
  assert_int_equal(a__b__c__d__first__crpc_register(server, &handlers, NULL), 0);
  snprintf(st.target, sizeof(st.target), "tcp://127.0.0.1:%d", port);

  assert_int_equal(uv_async_init(&loop, &st.done, on_client_done), 0);
  assert_int_equal(uv_thread_create(&thread, client_thread, &st), 0);
  while (!uv_is_closing((uv_handle_t *)&st.done))
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(uv_thread_join(&thread), 0);
  crpc_server_close(server, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);

  assert_int_equal(st.rc_open, 0);
  assert_int_equal(st.n_written, N_MESSAGES);
  assert_int_equal(st.n_read, N_MESSAGES);
  assert_int_equal(st.rc_last_read, 0);
  assert_string_equal(st.texts[0], "echo:m0");
  assert_string_equal(st.texts[1], "echo:m1");
  assert_string_equal(st.texts[2], "echo:m2");
  assert_int_equal(st.rc_finish, 0);
  assert_int_equal(st.code, CRPC_STATUS_OK);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(old_names_still_work),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
