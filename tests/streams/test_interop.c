/* The streaming cases of gRPC's interop suite, over crpc's typed stubs: server streaming, client
 * streaming, ping-pong, empty stream, cancel after begin, cancel after the first response, and a
 * deadline on a server that never answers; async (loop channel) and blocking (private-loop
 * channel on a helper thread); plus UNIMPLEMENTED for a NULL streaming handler. */
#include "stream.h"

#include <stdio.h>
#include <string.h>

#define WAIT_MS 20000 /* generous: a slow, shared machine must not fail a correct runtime */

static const int out_sizes[] = {31415, 9, 2653, 58979};
static const int in_sizes[] = {27182, 8, 1828, 45904};

static const Itest__Test__StreamingOutputHandlers output_handlers = {st_rec_out, st_rec_writable,
                                                                     st_rec_done, 1};
static const Itest__Test__StreamingInputHandlers input_handlers = {st_rec_in, st_rec_writable,
                                                                   st_rec_done, 0};
static const Itest__Test__FullDuplexHandlers duplex_handlers = {st_rec_out, st_rec_writable,
                                                                st_rec_done, 0};

static void server_streaming(void **state)
{
  st_env *e = *state;
  st_outreq req;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__streaming_output__stream(e->ch, NULL, &output_handlers, &r, &r.s),
                   0);
  st_outreq_init(&req, out_sizes, 4, 0);
  assert_int_equal(itest__test__streaming_output__write(r.s, &req.req), 0);
  st_outreq_free(&req);
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.nread, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r.sizes[i], out_sizes[i]);
    assert_int_equal(r.seqs[i], i);
  }
  assert_int_equal(e->counters.ended_ok, 1);
}

static void client_streaming(void **state)
{
  st_env *e = *state;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__streaming_input__stream(e->ch, NULL, &input_handlers, &r, &r.s), 0);
  for (int i = 0; i < 4; i++)
    st_write_input(e, &r, in_sizes[i]);
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  assert_int_equal(crpc_stream_read(r.s), 0); /* the one response */
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.nread, 1);
  assert_int_equal(r.aggregated, 74922);
  assert_int_equal(e->counters.requests, 4);
}

static void ping_pong(void **state)
{
  st_env *e = *state;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &duplex_handlers, &r, &r.s), 0);
  for (int i = 0; i < 4; i++) {
    st_write_duplex(e, &r, &out_sizes[i], 1, in_sizes[i]);
    assert_int_equal(crpc_stream_read(r.s), 0);
    st_wait_count(e, &r.nread, i + 1, WAIT_MS, "ping-pong response");
    assert_int_equal(r.sizes[i], out_sizes[i]);
    assert_int_equal(r.seqs[i], i);
    assert_int_equal(e->counters.requests, i + 1); /* lock-step: the server saw exactly i + 1 */
  }
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.nread, 4);
}

static void empty_stream(void **state)
{
  st_env *e = *state;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &duplex_handlers, &r, &r.s), 0);
  assert_int_equal(crpc_stream_close_send(r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_OK);
  assert_int_equal(r.nread, 0);
  assert_int_equal(e->counters.requests, 0);
}

typedef struct both {
  const int *a, *b;
} both;

static int equal_counts(void *arg)
{
  both *x = arg;

  return *x->a == *x->b;
}

static void cancel_after_begin(void **state)
{
  st_env *e = *state;
  st_rec r;
  both settled = {&e->counters.started[1], &e->counters.cancels};

  st_rec_init(&r, e);
  assert_int_equal(itest__test__streaming_input__stream(e->ch, NULL, &input_handlers, &r, &r.s), 0);
  crpc_stream_cancel(r.s);
  assert_int_equal(r.done, 1); /* before crpc_stream_cancel returned */
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  /* Whatever reached the server is cancelled there; nothing else reaches the client. */
  st_run_for(e, 50);
  assert_true(st_run_until(e, equal_counts, &settled, WAIT_MS));
  assert_int_equal(r.done, 1);
  assert_int_equal(e->counters.ended_ok, 0);
}

static void cancel_after_first_response(void **state)
{
  st_env *e = *state;
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, NULL, &duplex_handlers, &r, &r.s), 0);
  st_write_duplex(e, &r, &out_sizes[0], 1, in_sizes[0]);
  assert_int_equal(crpc_stream_read(r.s), 0);
  st_wait_count(e, &r.nread, 1, WAIT_MS, "first response");
  assert_int_equal(r.sizes[0], out_sizes[0]);
  crpc_stream_cancel(r.s);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, CRPC_STATUS_CANCELLED);
  st_wait_count(e, &e->counters.cancels, 1, WAIT_MS, "server on_cancel");
  assert_int_equal(r.done, 1);
  assert_int_equal(e->counters.ended_ok, 0);
}

static void timeout_on_sleeping_server(void **state)
{
  st_env *e = *state;
  crpc_call_opts opts = {.timeout_ms = 30};
  st_rec r;

  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(e->ch, &opts, &duplex_handlers, &r, &r.s), 0);
  st_write_duplex(e, &r, NULL, 0, in_sizes[0]); /* asks for no response: the server stays quiet */
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_DEADLINE_EXCEEDED);
  assert_int_equal(r.nread, 0);
  /* The server's copy of the deadline cancels its side too. */
  st_wait_count(e, &e->counters.cancels, 1, WAIT_MS, "server on_cancel at the deadline");
}

static void unimplemented_stream(void **state)
{
  st_env *e = *state;
  static const Itest__Test__Handlers none = {0};
  crpc_server *srv;
  crpc_channel *ch;
  char target[64];
  int port;
  st_rec r;

  assert_int_equal(crpc_server_new(&srv, &e->loop), 0);
  assert_int_equal(crpc_server_listen(srv, "tcp://127.0.0.1:0", &port), 0);
  assert_int_equal(itest__test__crpc_register(srv, &none, NULL), 0);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&ch, &e->loop, target), 0);
  st_rec_init(&r, e);
  assert_int_equal(itest__test__full_duplex__stream(ch, NULL, &duplex_handlers, &r, &r.s), 0);
  st_wait_done(e, &r, WAIT_MS);
  assert_int_equal(r.code, CRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(r.message, "itest.Test/FullDuplex"));
  crpc_channel_close(ch, NULL, NULL);
  crpc_server_close(srv, NULL, NULL); /* st_env_finish runs the loop until both are gone */
}

/* ---- Blocking stubs, on a helper thread ------------------------------------------------------- */

typedef struct blocking_job {
  const char *target;
  int ok_steps;
  crpc_code code;
} blocking_job;

static void server_streaming_blocking_job(void *arg)
{
  blocking_job *j = arg;
  crpc_channel *ch;
  crpc_stream *s;
  st_outreq req;
  Itest__OutputResponse *msg;
  crpc_status status;
  int rc, n = 0;

  if (crpc_channel_new(&ch, NULL, j->target) != 0)
    return;
  st_outreq_init(&req, out_sizes, 4, 0);
  if (itest__test__streaming_output__open(ch, NULL, &s) == 0) {
    if (itest__test__streaming_output__send_wait(s, &req.req) == 0)
      j->ok_steps++;
    while ((rc = itest__test__streaming_output__recv_wait(s, &msg)) == 1) {
      if (n < 4 && st_payload_ok(msg->payload, out_sizes[n]) && msg->seq == n)
        j->ok_steps++;
      n++;
      protobuf_c_message_free_unpacked(&msg->base, NULL);
    }
    if (rc == 0 && msg == NULL && n == 4)
      j->ok_steps++;
    if (itest__test__streaming_output__finish_wait(s, &status) == 0) {
      j->code = status.code;
      crpc_status_reset(&status);
    }
  }
  st_outreq_free(&req);
  crpc_channel_close(ch, NULL, NULL);
}

static void server_streaming_blocking(void **state)
{
  st_env *e = *state;
  blocking_job j = {e->endpoint, 0, (crpc_code)-1};

  st_in_thread(e, server_streaming_blocking_job, &j, 60000);
  assert_int_equal(j.ok_steps, 1 + 4 + 1);
  assert_int_equal(j.code, CRPC_STATUS_OK);
}

/* Client streaming with the blocking API: write the requests, close the sending side (from this
 * thread: the stream belongs to it), then read the one response. */
static void client_streaming_blocking_job(void *arg)
{
  blocking_job *j = arg;
  crpc_channel *ch;
  crpc_stream *s;
  crpc_status status;
  Itest__InputResponse *resp = NULL;

  if (crpc_channel_new(&ch, NULL, j->target) != 0)
    return;
  if (itest__test__streaming_input__open(ch, NULL, &s) == 0) {
    for (int i = 0; i < 4; i++) {
      static uint8_t zeros[45904];
      Itest__Blob blob = ITEST__BLOB__INIT;
      Itest__InputRequest req = ITEST__INPUT_REQUEST__INIT;
      blob.data.data = zeros;
      blob.data.len = (size_t)in_sizes[i];
      req.payload = &blob;
      if (itest__test__streaming_input__send_wait(s, &req) == 0)
        j->ok_steps++;
    }
    if (crpc_stream_close_send(s) == 0)
      j->ok_steps++;
    if (itest__test__streaming_input__recv_wait(s, &resp) == 1 && resp->aggregated_size == 74922 &&
        resp->messages == 4)
      j->ok_steps++;
    if (resp != NULL)
      protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (itest__test__streaming_input__recv_wait(s, &resp) == 0 && resp == NULL)
      j->ok_steps++;
    if (itest__test__streaming_input__finish_wait(s, &status) == 0) {
      j->code = status.code;
      crpc_status_reset(&status);
    }
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void client_streaming_blocking(void **state)
{
  st_env *e = *state;
  blocking_job j = {e->endpoint, 0, (crpc_code)-1};

  st_in_thread(e, client_streaming_blocking_job, &j, 60000);
  assert_int_equal(j.ok_steps, 4 + 1 + 1 + 1);
  assert_int_equal(j.code, CRPC_STATUS_OK);
}

static void ping_pong_blocking_job(void *arg)
{
  blocking_job *j = arg;
  crpc_channel *ch;
  crpc_stream *s;
  crpc_status status;

  if (crpc_channel_new(&ch, NULL, j->target) != 0)
    return;
  if (itest__test__full_duplex__open(ch, NULL, &s) == 0) {
    for (int i = 0; i < 4; i++) {
      st_outreq req;
      Itest__OutputResponse *msg = NULL;

      st_outreq_init(&req, &out_sizes[i], 1, in_sizes[i]);
      if (itest__test__full_duplex__send_wait(s, &req.req) == 0 &&
          itest__test__full_duplex__recv_wait(s, &msg) == 1 &&
          st_payload_ok(msg->payload, out_sizes[i]) && msg->seq == i)
        j->ok_steps++;
      if (msg != NULL)
        protobuf_c_message_free_unpacked(&msg->base, NULL);
      st_outreq_free(&req);
    }
    if (itest__test__full_duplex__finish_wait(s, &status) == 0) {
      j->code = status.code;
      crpc_status_reset(&status);
    }
  }
  crpc_channel_close(ch, NULL, NULL);
}

static void ping_pong_blocking(void **state)
{
  st_env *e = *state;
  blocking_job j = {e->endpoint, 0, (crpc_code)-1};

  st_in_thread(e, ping_pong_blocking_job, &j, 60000);
  assert_int_equal(j.ok_steps, 4);
  assert_int_equal(j.code, CRPC_STATUS_OK);
  assert_int_equal(e->counters.requests, 4);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(server_streaming, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(client_streaming, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(ping_pong, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(empty_stream, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(cancel_after_begin, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(cancel_after_first_response, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(timeout_on_sleeping_server, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(unimplemented_stream, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(server_streaming_blocking, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(ping_pong_blocking, st_setup, st_teardown),
      cmocka_unit_test_setup_teardown(client_streaming_blocking, st_setup, st_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
