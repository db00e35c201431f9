/* examples/chat's limits, against the real chat_server process (path given at build time):
 *  - one connection cannot hold more than the server's participants-per-connection cap (8): the
 *    ninth Talk stream on a connection is refused RESOURCE_EXHAUSTED, while another connection
 *    still joins;
 *  - a participant that reads nothing is disconnected (RESOURCE_EXHAUSTED) once its outbox would
 *    pass its bound in bytes; the server reports the bytes it had queued (at most 32 KiB), the
 *    participant received no more than its window, and an active participant (a listener the
 *    talker keeps pace with) received every line in order the whole time.
 * The client side runs on the test's loop; the server's stdout is read through a pipe. Every wait
 * is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "chat.crpc.h"

#define PER_CONN_MAX 8       /* chat_server.c */
#define OUTBOX_MAX_BYTES 32768
#define WINDOW 65536         /* the client's STREAM_WINDOW default */
#define LINES 120
#define LINE_LEN 3000
#define AHEAD 8 /* lines the talker sends ahead of what the listener has received: it keeps up */

typedef struct env {
  uv_loop_t loop;
  uv_process_t proc;
  uv_pipe_t out;
  char text[1 << 16]; /* the server's stdout so far */
  size_t len;
  int exited, out_closed;
  int64_t exit_status;
  char endpoint[64];
} env;

static env E;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static int run_until(int (*pred)(void *), void *arg, uint64_t timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  while (!pred(arg)) {
    if (now_ms() >= end) return 0;
    uv_run(&E.loop, UV_RUN_NOWAIT);
    if (!pred(arg)) uv_sleep(1);
  }
  return 1;
}

/* ---- The server process ----------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  size_t room = sizeof E.text - 1 - E.len;
  *b = uv_buf_init(E.text + E.len, (unsigned)room);
}

static void on_out(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  if (n > 0) {
    E.len += (size_t)n;
    E.text[E.len] = '\0';
    if (E.len + 1 >= sizeof E.text) uv_read_stop(s);
  } else if (n < 0) {
    uv_read_stop(s);
  }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  (void)p;
  E.exited = 1;
  E.exit_status = sig ? 128 + sig : status;
}

static int server_says(void *what) { return strstr(E.text, what) != NULL; }
static int server_exited(void *arg) { (void)arg; return E.exited; }

static void server_start(void) {
  memset(&E, 0, sizeof E);
  assert_int_equal(uv_loop_init(&E.loop), 0);
  assert_int_equal(uv_pipe_init(&E.loop, &E.out, 0), 0);
  char *args[] = {(char *)CHAT_SERVER_PATH, (char *)"tcp://127.0.0.1:0", NULL};
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&E.out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.file = CHAT_SERVER_PATH;
  o.args = args;
  o.exit_cb = on_exit_cb;
  o.stdio = stdio;
  o.stdio_count = 3;
  assert_int_equal(uv_spawn(&E.loop, &E.proc, &o), 0);
  assert_int_equal(uv_read_start((uv_stream_t *)&E.out, on_alloc, on_out), 0);
  if (!run_until(server_says, "listening on port ", 10000))
    fail_msg("chat_server did not start: %s", E.text);
  int port = atoi(strstr(E.text, "listening on port ") + strlen("listening on port "));
  assert_true(port > 0);
  snprintf(E.endpoint, sizeof E.endpoint, "tcp://127.0.0.1:%d", port);
}

static void server_stop(void) {
  uv_process_kill(&E.proc, SIGTERM);
  if (!run_until(server_exited, NULL, 10000)) fail_msg("chat_server did not exit on SIGTERM");
  assert_int_equal(E.exit_status, 0);
  uv_close((uv_handle_t *)&E.proc, NULL);
  uv_close((uv_handle_t *)&E.out, NULL);
  uv_run(&E.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&E.loop), 0);
}

/* ---- Participants ----------------------------------------------------------------------------- */

typedef struct member {
  crpc_stream *s;
  const char *name;
  int welcomed;       /* got "welcome, NAME" */
  int lines;          /* lines from "talker", in order */
  int out_of_order;
  char notices[2048]; /* every "*" notice, concatenated */
  int done;
  crpc_code code;
  /* talker */
  int sent;
} member;

static void on_read(crpc_stream *s, const Chat__Line *msg, void *ud) {
  (void)s;
  member *m = ud;
  if (strcmp(msg->from, "*") == 0) {
    if (strncmp(msg->text, "welcome, ", 9) == 0) m->welcomed = 1;
    size_t n = strlen(m->notices);
    snprintf(m->notices + n, sizeof m->notices - n, "%s|", msg->text);
  } else if (strcmp(msg->from, "talker") == 0) {
    if (atoi(msg->text) != m->lines || strlen(msg->text) != LINE_LEN) m->out_of_order++;
    m->lines++;
  }
}

static member listener, silent, talker;
static void talker_send(member *m);
static void on_writable(crpc_stream *s, void *ud) {
  (void)s;
  member *m = ud;
  if (strcmp(m->name, "talker") == 0) talker_send(m);
}

static void on_done(crpc_stream *s, const crpc_status *st, void *ud) {
  (void)s;
  member *m = ud;
  m->done = 1;
  m->code = st->code;
  m->s = NULL;
}

static const Chat__Room__TalkHandlers reading = {on_read, on_writable, on_done, 1};
static const Chat__Room__TalkHandlers not_reading = {on_read, on_writable, on_done, 0};

static void member_join(crpc_channel *ch, member *m, const char *name, int reads) {
  memset(m, 0, sizeof *m);
  m->name = name;
  assert_int_equal(chat__room__talk__stream(ch, NULL, reads ? &reading : &not_reading, m, &m->s), 0);
  Chat__Line hello = CHAT__LINE__INIT;
  hello.from = (char *)name;
  hello.text = (char *)"";
  assert_int_equal(chat__room__talk__write(m->s, &hello), 0);
}

/* The talker paces itself on the listener, as people talking to each other do. */
static void talker_send(member *m) {
  static char text[LINE_LEN + 1];
  while (m->s && m->sent < LINES && m->sent - listener.lines < AHEAD) {
    memset(text, 'x', LINE_LEN);
    int n = snprintf(text, sizeof text, "%04d ", m->sent);
    text[n] = 'x';
    text[LINE_LEN] = '\0';
    Chat__Line line = CHAT__LINE__INIT;
    line.from = (char *)"talker";
    line.text = text;
    int rc = chat__room__talk__write(m->s, &line);
    if (rc == CRPC_EAGAIN) return;
    assert_int_equal(rc, 0);
    m->sent++;
  }
}

static crpc_channel *channel(void) {
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &E.loop, E.endpoint), 0);
  return ch;
}

static int closed_count;
static void closed_cb(void *ud) { (void)ud; closed_count++; }
static int count_reached(void *want) { return closed_count >= *(int *)want; }

static void close_channels(crpc_channel **chs, int n) {
  closed_count = 0;
  for (int i = 0; i < n; i++) crpc_channel_close(chs[i], closed_cb, NULL);
  assert_true(run_until(count_reached, &n, 10000));
}

/* ---- Cases ------------------------------------------------------------------------------------ */

typedef struct many {
  member *m;
  int n;
} many;

static int settled(void *arg) {
  many *a = arg;
  for (int i = 0; i < a->n; i++)
    if (!a->m[i].welcomed && !a->m[i].done) return 0;
  return 1;
}

static void per_connection_cap(void **state) {
  (void)state;
  static member m[PER_CONN_MAX + 1];
  static const char *const names[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"};
  crpc_channel *one = channel();
  for (int i = 0; i <= PER_CONN_MAX; i++) member_join(one, &m[i], names[i], 1);
  many all = {m, PER_CONN_MAX + 1};
  assert_true(run_until(settled, &all, 10000));
  int welcomed = 0, refused = 0;
  for (int i = 0; i <= PER_CONN_MAX; i++) {
    if (m[i].welcomed && !m[i].done) welcomed++;
    if (m[i].done && m[i].code == CRPC_STATUS_RESOURCE_EXHAUSTED) refused++;
  }
  if (welcomed != PER_CONN_MAX || refused != 1)
    fail_msg("one connection: %d participants welcomed, %d refused (want %d and 1)", welcomed,
             refused, PER_CONN_MAX);
  /* The cap is per connection: another one joins. */
  crpc_channel *other = channel();
  static member o;
  member_join(other, &o, "other", 1);
  many just = {&o, 1};
  assert_true(run_until(settled, &just, 10000));
  assert_true(o.welcomed && !o.done);
  crpc_channel *chs[] = {one, other};
  close_channels(chs, 2);
}

static int slow_settled(void *arg) {
  (void)arg;
  talker_send(&talker);
  return listener.lines == LINES && strstr(E.text, "silent fell behind (") != NULL;
}

static int is_done(void *arg) { return ((member *)arg)->done; }
static int is_done_or_lines(void *arg) { return ((member *)arg)->done || ((member *)arg)->lines > 0; }
static int heard_silent_left(void *arg) { return strstr(((member *)arg)->notices, "silent left") != NULL; }

static void silent_participant_dropped(void **state) {
  (void)state;
  crpc_channel *cl = channel(), *cs = channel(), *ct = channel();
  member_join(cl, &listener, "listener", 1);
  member_join(cs, &silent, "silent", 0); /* reads nothing until told */
  many two = {&listener, 1};
  assert_true(run_until(settled, &two, 10000));
  member_join(ct, &talker, "talker", 1);
  many three = {&talker, 1};
  assert_true(run_until(settled, &three, 10000));
  talker_send(&talker);
  if (!run_until(slow_settled, NULL, 20000))
    fail_msg("after 20 s: talker sent %d, listener got %d of %d lines; server said:\n%s",
             talker.sent, listener.lines, LINES, E.text);
  assert_int_equal(listener.out_of_order, 0);
  assert_false(listener.done);
  /* What the server held for the silent participant when it gave up: within the bound. */
  const char *at = strstr(E.text, "silent fell behind (") + strlen("silent fell behind (");
  long queued = atol(at);
  if (queued <= 0 || queued > OUTBOX_MAX_BYTES)
    fail_msg("silent participant's outbox: %ld bytes (bound %d)", queued, OUTBOX_MAX_BYTES);
  /* The listener hears that it left. */
  if (!run_until(heard_silent_left, &listener, 10000))
    fail_msg("the listener was not told that silent left: %s", listener.notices);
  /* Now it reads: what reached it was about one window, then RESOURCE_EXHAUSTED. */
  uint64_t end = now_ms() + 10000;
  while (!silent.done && now_ms() < end) {
    int rc = crpc_stream_read(silent.s); /* CRPC_ESTATE while a read is pending */
    if (rc != 0 && rc != CRPC_ESTATE) fail_msg("crpc_stream_read: %s", crpc_strerror(rc));
    uv_run(&E.loop, UV_RUN_NOWAIT);
    if (!silent.done) uv_sleep(1);
  }
  assert_true(run_until(is_done, &silent, 10000));
  assert_int_equal(silent.code, CRPC_STATUS_RESOURCE_EXHAUSTED);
  /* A message may be sent while any window is left: one window, and the message crossing it. */
  if (silent.lines < 1 || (long)(silent.lines - 1) * LINE_LEN > WINDOW)
    fail_msg("silent participant received %d lines of %d bytes (window %d)", silent.lines,
             LINE_LEN, WINDOW);
  crpc_channel *chs[] = {cl, cs, ct};
  close_channels(chs, 3);
}

static int heard_too_long(void *arg) {
  return strstr(((member *)arg)->notices, "your line was not sent") != NULL;
}

/* A line past the server's 4,096 bytes is not relayed, and its sender is told (not dropped
 * without a word); the next line goes through. */
static void long_line_refused_with_notice(void **state) {
  (void)state;
  crpc_channel *cl = channel(), *ct = channel();
  member_join(cl, &listener, "listener", 1);
  member_join(ct, &talker, "talker", 1);
  many l = {&listener, 1}, t = {&talker, 1};
  assert_true(run_until(settled, &l, 10000));
  assert_true(run_until(settled, &t, 10000));
  static char text[4097 + 1];
  memset(text, 'y', 4097);
  text[4097] = '\0';
  Chat__Line line = CHAT__LINE__INIT;
  line.from = (char *)"talker";
  line.text = text;
  assert_int_equal(chat__room__talk__write(talker.s, &line), 0);
  if (!run_until(heard_too_long, &talker, 10000))
    fail_msg("the sender of a 4,097-byte line was not told: %s", talker.notices);
  /* then an ordinary line (the listener checks it is line 0 of LINE_LEN bytes) */
  talker.sent = 0;
  talker_send(&talker);
  assert_true(run_until(is_done_or_lines, &listener, 10000));
  assert_true(listener.lines >= 1);
  assert_int_equal(listener.out_of_order, 0); /* the long line never reached it */
  crpc_channel *chs[] = {cl, ct};
  close_channels(chs, 2);
}

static int setup(void **state) {
  (void)state;
  server_start();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  server_stop();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(per_connection_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(silent_participant_dropped, setup, teardown),
      cmocka_unit_test_setup_teardown(long_line_refused_with_notice, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
