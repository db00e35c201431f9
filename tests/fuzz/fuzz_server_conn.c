/* Fuzz target: one whole server connection, through the public API.
 *
 * Once per process: a loop server (crpc_server_new(&s, &loop)) serving fuzz.Target
 * (proto/fuzz_target.proto) on a Unix socket in a fresh temp directory, with a small
 * MAX_RECV_MESSAGE_SIZE so that the oversize paths are reachable.
 * Per input: a plain non-blocking client socket connects and writes a valid preface followed by
 * the input, interleaved with turns of the loop (so the server reads, dispatches and answers
 * while the client writes), then half-closes. The harness reads and discards what the server
 * sends until the server closes the connection, then runs the loop until every handle the
 * connection used is gone and every call the handlers kept is finished. No crash, leak, hang or
 * UB; the loop's handle count must be back to what it was before the input.
 *
 * Handlers: Echo replies at once; Fail fails with code n (n == 0 must give CRPC_EINVAL); Later
 * keeps the call and the harness finishes it on a later loop turn (even n) or after the
 * connection is gone (odd n), by reply or fail alternately. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "fuzz.h"
#include "fuzz_sock.h"
#include "fuzz_target.crpc.h"

#define MAX_HELD 256
/* An input that keeps the loop busy longer than this is a hang (libFuzzer's -timeout is
 * shorter; this bound is for the replay driver). */
#define MAX_NS (3 * 1000000000ull)

typedef struct held {
  crpc_server_call *call;
  int64_t n;
} held;

static struct {
  int ready;
  uv_loop_t loop;
  crpc_server *srv;
  char dir[128], path[160], endpoint[180];
  size_t baseline; /* handles of an idle server */
  held held[MAX_HELD];
  size_t n_held;
  unsigned long finished;
} S;

/* ---- handlers ---------------------------------------------------------------------------------*/

static void check_call(crpc_server_call *call, const char *name) {
  const crpc_method_desc *m = crpc_server_call_method(call);
  FUZZ_CHECK(m != NULL && strcmp(m->name, name) == 0);
  FUZZ_CHECK(crpc_server_call_server(call) == S.srv);
}

static void on_echo(crpc_server_call *call, const Fuzz__Msg *req, void *ud) {
  (void)ud;
  check_call(call, "Echo");
  Fuzz__Msg rep = FUZZ__MSG__INIT;
  rep.text = req->text;
  rep.n = (int64_t)req->n_kids;
  rep.blob = req->blob;
  FUZZ_CHECK(fuzz__target__echo__reply(call, &rep) == 0);
}

static void on_fail(crpc_server_call *call, const Fuzz__Msg *req, void *ud) {
  (void)ud;
  check_call(call, "Fail");
  /* Any 32-bit code may be sent; OK is refused by the API (and the call ends INTERNAL). */
  crpc_code code = (crpc_code)(uint32_t)req->n;
  int rc = crpc_server_call_fail(call, code, req->text);
  FUZZ_CHECK(rc == (code == CRPC_STATUS_OK ? CRPC_EINVAL : 0));
}

static void finish(held *h) {
  int rc;
  if (h->n & 2) {
    rc = crpc_server_call_fail(h->call, CRPC_STATUS_ABORTED, "later, failed");
  } else {
    Fuzz__Msg rep = FUZZ__MSG__INIT;
    rep.text = "later";
    rc = fuzz__target__later__reply(h->call, &rep);
  }
  FUZZ_CHECK(rc == 0);
  S.finished++;
}

static void on_later(crpc_server_call *call, const Fuzz__Msg *req, void *ud) {
  (void)ud;
  check_call(call, "Later");
  if (S.n_held == MAX_HELD) {
    held h = {call, req->n};
    finish(&h);
    return;
  }
  S.held[S.n_held++] = (held){call, req->n};
}

/* Finishes the kept calls; with `all` 0 only those meant to be finished while connected. */
static void finish_held(int all) {
  size_t keep = 0;
  for (size_t i = 0; i < S.n_held; i++) {
    if (all || !(S.held[i].n & 1))
      finish(&S.held[i]);
    else
      S.held[keep++] = S.held[i];
  }
  S.n_held = keep;
}

static const Fuzz__Target__Handlers handlers = {
    .echo = on_echo, .fail = on_fail, .later = on_later, .unimpl = NULL};

/* ---- harness ----------------------------------------------------------------------------------*/

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  ++*(size_t *)arg;
}

static size_t handles(void) {
  size_t n = 0;
  uv_walk(&S.loop, count_handle, &n);
  return n;
}

static void setup(void) {
  fs_sigpipe_policy();
  FUZZ_CHECK(uv_loop_init(&S.loop) == 0);
  FUZZ_CHECK(fs_socket_path(S.dir, sizeof S.dir, S.path, sizeof S.path) == 0);
  snprintf(S.endpoint, sizeof S.endpoint, "unix:%s", S.path);
  FUZZ_CHECK(crpc_server_new(&S.srv, &S.loop) == 0);
  FUZZ_CHECK(crpc_server_set_option(S.srv, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, 512) == 0);
  FUZZ_CHECK(crpc_server_set_option(S.srv, CRPC_OPT_MAX_CALLS_PER_CONN, 8) == 0);
  FUZZ_CHECK(crpc_server_listen(S.srv, S.endpoint, NULL) == 0);
  FUZZ_CHECK(fuzz__target__crpc_register(S.srv, &handlers, NULL) == 0);
  for (int i = 0; i < 4; i++)
    uv_run(&S.loop, UV_RUN_NOWAIT);
  S.baseline = handles();
  S.ready = 1;
}

static void turn(void) {
  uv_run(&S.loop, UV_RUN_NOWAIT);
  finish_held(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!S.ready)
    setup();
  static const uint8_t preface[8] = {'C', 'R', 'P', 'C', '\r', '\n', 1, 0};
  uint8_t *out = malloc(sizeof preface + size);
  FUZZ_CHECK(out != NULL);
  memcpy(out, preface, sizeof preface);
  if (size)
    memcpy(out + sizeof preface, data, size);
  size_t len = sizeof preface + size, sent = 0;

  int fd = fs_connect(S.path);
  FUZZ_CHECK(fd >= 0);
  int closed = 0;
  uint64_t start = uv_hrtime();
  /* Write, letting the server run whenever the socket is full. */
  while (sent < len && !closed) {
    long w = fs_write_some(fd, out + sent, len - sent);
    if (w < 0)
      break; /* the server closed on us: fine, it may refuse bad input at once */
    sent += (size_t)w;
    turn();
    closed = fs_drain(fd, NULL);
    FUZZ_CHECK(uv_hrtime() - start < MAX_NS);
  }
  free(out);
  shutdown(fd, SHUT_WR);
  /* The server must close the connection once it has read our EOF (or sooner). */
  while (!closed) {
    turn();
    closed = fs_drain(fd, NULL);
    FUZZ_CHECK(uv_hrtime() - start < MAX_NS);
  }
  close(fd);
  /* The connection must now be released entirely; calls kept past it are finished here. */
  finish_held(1);
  while (handles() != S.baseline) {
    turn();
    FUZZ_CHECK(uv_hrtime() - start < MAX_NS);
  }
  FUZZ_CHECK(S.n_held == 0);
  return 0;
}

static void on_server_closed(void *ud) { *(int *)ud = 1; }

void fuzz_teardown(void) {
  if (!S.ready)
    return;
  int done = 0;
  crpc_server_close(S.srv, on_server_closed, &done);
  uv_run(&S.loop, UV_RUN_DEFAULT);
  FUZZ_CHECK(done);
  FUZZ_CHECK(uv_loop_close(&S.loop) == 0);
  fs_socket_path_remove(S.dir, S.path);
  fprintf(stderr, "server_conn: %lu calls finished late\n", S.finished);
  S.ready = 0;
}
