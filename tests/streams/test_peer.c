/* A peer that disappears mid-stream: the server runs in a child process (a private-loop server
 * with the same service) and is killed with SIGKILL while streams of every kind are open. Every
 * stream must complete exactly once, with UNAVAILABLE. */
#include "stream.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 20000

enum { N_DUPLEX = 8, N_FLOOD = 4, N_INPUT = 4, N_ALL = N_DUPLEX + N_FLOOD + N_INPUT };

/* Child: serve until killed. Reports the port (or -1) through fd. */
static void child_serve(int fd)
{
  static st_counters counters;
  crpc_server *srv;
  int port = -1;

  if (crpc_server_new(&srv, NULL) == 0 &&
      crpc_server_listen(srv, "tcp://127.0.0.1:0", &port) == 0 &&
      itest__test__crpc_register(srv, &st_service_handlers, &counters) == 0) {
    if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
      _exit(2);
    crpc_server_run(srv);
  } else {
    port = -1;
    if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
      _exit(2);
  }
  _exit(1); /* not reached while serving: the parent kills us */
}

static int read_port(int fd)
{
  struct pollfd p = {fd, POLLIN, 0};
  int port = -1;

  assert_int_equal(poll(&p, 1, WAIT_MS), 1);
  assert_int_equal(read(fd, &port, sizeof(port)), (ssize_t)sizeof(port));
  return port;
}

static const Itest__Test__FullDuplexHandlers duplex_handlers = {st_rec_out, NULL, st_rec_done, 1};
static const Itest__Test__StreamingOutputHandlers flood_handlers = {
    st_rec_out, NULL, st_rec_done, 0}; /* never reads: the server stays blocked on the window */
static const Itest__Test__StreamingInputHandlers input_handlers = {st_rec_in, NULL, st_rec_done, 0};

static void peer_killed_mid_stream(void **state)
{
  static st_rec r[N_ALL];
  int fds[2], port, status, first = 0;
  char target[64];
  crpc_channel *ch;
  pid_t pid;
  st_env e;

  (void)state;
  assert_int_equal(pipe(fds), 0);
  pid = fork(); /* before any loop or thread exists in this process */
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_serve(fds[1]);
  }
  close(fds[1]);
  port = read_port(fds[0]);
  close(fds[0]);
  assert_true(port > 0);

  st_env_start(&e);
  snprintf(target, sizeof(target), "tcp://127.0.0.1:%d", port);
  assert_int_equal(crpc_channel_new(&ch, &e.loop, target), 0);
  for (int i = 0; i < N_ALL; i++)
    st_rec_init(&r[i], &e);
  for (int i = 0; i < N_DUPLEX; i++) {
    int size = 100 + i;
    st_outreq req;

    assert_int_equal(itest__test__full_duplex__stream(ch, NULL, &duplex_handlers, &r[i], &r[i].s),
                     0);
    st_outreq_init(&req, &size, 1, 10);
    assert_int_equal(itest__test__full_duplex__write(r[i].s, &req.req), 0);
    st_outreq_free(&req);
  }
  for (int i = N_DUPLEX; i < N_DUPLEX + N_FLOOD; i++) {
    st_outreq req;

    assert_int_equal(
        itest__test__streaming_output__stream(ch, NULL, &flood_handlers, &r[i], &r[i].s), 0);
    st_outreq_init(&req, NULL, 0, 0);
    req.req.flood_count = 1000;
    req.req.flood_size = 4000;
    assert_int_equal(itest__test__streaming_output__write(r[i].s, &req.req), 0);
    st_outreq_free(&req);
    assert_int_equal(crpc_stream_close_send(r[i].s), 0);
  }
  for (int i = N_DUPLEX + N_FLOOD; i < N_ALL; i++) {
    st_inreq req;

    assert_int_equal(
        itest__test__streaming_input__stream(ch, NULL, &input_handlers, &r[i], &r[i].s), 0);
    st_inreq_init(&req, 1000);
    assert_int_equal(itest__test__streaming_input__write(r[i].s, &req.req), 0);
    st_inreq_free(&req);
  }
  /* Mid-stream: every bidi stream has had its first response, and none has ended. */
  for (int i = 0; i < N_DUPLEX; i++)
    st_wait_count(&e, &r[i].nread, 1, WAIT_MS, "first response");
  for (int i = 0; i < N_ALL; i++)
    assert_int_equal(r[i].done, 0);

  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  for (int i = 0; i < N_ALL; i++)
    st_wait_count(&e, &r[i].done, 1, WAIT_MS, "stream done after the peer died");
  st_run_for(&e, 100); /* nothing completes twice */
  for (int i = 0; i < N_ALL; i++) {
    if (r[i].code != CRPC_STATUS_UNAVAILABLE)
      fprintf(stderr, "stream %d: code %d (%s)\n", i, (int)r[i].code, r[i].message);
    first += r[i].code == CRPC_STATUS_UNAVAILABLE;
    assert_int_equal(r[i].done, 1);
  }
  assert_int_equal(first, N_ALL);
  crpc_channel_close(ch, NULL, NULL);
  st_env_finish(&e);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(peer_killed_mid_stream),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
