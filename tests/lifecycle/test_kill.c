/* The server process dies (SIGKILL) with calls in flight: every pending call completes exactly
 * once, with UNAVAILABLE. The server runs in a child process (itest_server). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define N_PENDING 30

typedef struct child {
  pid_t pid;
  char endpoint[512];
} child;

/* Starts itest_server on listen_ep and reads its "listening on ENDPOINT" line (bounded). */
static void child_start(child *c, const char *listen_ep) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  c->pid = fork();
  assert_true(c->pid >= 0);
  if (c->pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(ITEST_SERVER_PATH, "itest_server", listen_ep, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char line[512];
  size_t len = 0;
  uint64_t until = ts_now_ms() + 20000;
  while (!memchr(line, '\n', len) && len < sizeof line - 1) {
    struct pollfd p = {fds[0], POLLIN, 0};
    int64_t left = (int64_t)(until - ts_now_ms());
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) fail_msg("itest_server did not start in time");
    ssize_t n = read(fds[0], line + len, sizeof line - 1 - len);
    if (n <= 0) fail_msg("itest_server exited before listening");
    len += (size_t)n;
  }
  close(fds[0]);
  line[len] = '\0';
  *strchr(line, '\n') = '\0';
  assert_int_equal(strncmp(line, "listening on ", 13), 0);
  snprintf(c->endpoint, sizeof c->endpoint, "%s", line + 13);
}

static void server_killed_mid_call(void **state) {
  const itest_transport *t = ITEST_TRANSPORT(state);
  char listen_ep[256];
  if (t->listen)
    snprintf(listen_ep, sizeof listen_ep, "%s", t->listen);
  else
    itest_unused_endpoint(t, listen_ep, sizeof listen_ep);
  child c;
  child_start(&c, listen_ep);

  uv_loop_t loop;
  uv_loop_init(&loop);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &loop, c.endpoint), 0);

  /* Calls the server will hold for a minute, then one answered at once: once that one is back,
   * the server has read every call sent before it (one ordered connection). */
  itest_rec recs[N_PENDING + 1];
  memset(recs, 0, sizeof recs);
  for (int i = 0; i < N_PENDING; i++) {
    char buf[32];
    Itest__EchoRequest req;
    itest_req_init(&req, (uint32_t)i, buf, sizeof buf);
    req.delay_ms = 60000;
    assert_int_equal(itest__test__echo__start(ch, &req, NULL, itest_rec_done, &recs[i], NULL), 0);
  }
  char buf[32];
  Itest__EchoRequest marker;
  itest_req_init(&marker, 999, buf, sizeof buf);
  assert_int_equal(
      itest__test__echo__start(ch, &marker, NULL, itest_rec_done, &recs[N_PENDING], NULL), 0);
  itest_recs last = {&recs[N_PENDING], 1};
  assert_true(itest_run_until(&loop, itest_all_done, &last, 20000));
  itest_assert_echo(&recs[N_PENDING], 999);
  for (int i = 0; i < N_PENDING; i++) assert_int_equal(recs[i].completions, 0);

  assert_int_equal(kill(c.pid, SIGKILL), 0);
  int wst;
  assert_int_equal(waitpid(c.pid, &wst, 0), c.pid);
  assert_true(WIFSIGNALED(wst));
  if (strncmp(c.endpoint, "unix:", 5) == 0) unlink(c.endpoint + 5);

  itest_recs pending = {recs, N_PENDING};
  assert_true(itest_run_until(&loop, itest_all_done, &pending, 20000));
  itest_run_for(&loop, 50); /* a second completion would show up here */
  for (int i = 0; i < N_PENDING; i++) {
    assert_int_equal(recs[i].completions, 1);
    if (recs[i].code != CRPC_STATUS_UNAVAILABLE)
      fail_msg("call %d ended %s: %s", i, crpc_code_name(recs[i].code), recs[i].message);
    assert_false(recs[i].has_response);
  }

  /* The channel is still usable: a new call fails cleanly (nobody listens). */
  itest_rec after;
  memset(&after, 0, sizeof after);
  assert_int_equal(itest__test__echo__start(ch, &marker, NULL, itest_rec_done, &after, NULL), 0);
  itest_recs one = {&after, 1};
  assert_true(itest_run_until(&loop, itest_all_done, &one, 20000));
  assert_int_equal(after.completions, 1);
  assert_int_equal(after.code, CRPC_STATUS_UNAVAILABLE);

  itest_channel_close(&loop, ch);
  itest_loop_finish(&loop);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {ITEST_PER_TRANSPORT(server_killed_mid_call)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
