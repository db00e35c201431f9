/* Fuzz target: a client channel whose server answers with arbitrary bytes.
 *
 * Once per process: a loop and a plain listening Unix socket in a fresh temp directory: the fake
 * server, played by the harness.
 * Per input: a loop channel (crpc_channel_new(&ch, &loop, "unix:...")) starts 1-4 async calls of
 * fuzz.Target (ids 1, 3, 5, 7 on the wire); the harness accepts the connection, reads what the
 * channel sends, answers with a valid server preface followed by the input's bytes, and closes.
 * Every call must complete exactly once (counted per call), OK exactly when there is a response,
 * and the channel must then close cleanly, leaving the loop with no handle of its own.
 *
 * Input layout: byte 0 is the configuration, the rest goes on the wire after the preface.
 *   bits 0-1  number of calls - 1
 *   bit 2     the first completion callback closes the channel (legal from a callback)
 *   bit 3     cancel the last call as soon as the connection is accepted
 *   bit 4     MAX_RECV_MESSAGE_SIZE 64 instead of the default (oversized STATUS paths)
 *   bit 5     the first completion callback starts one more call */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "fuzz.h"
#include "fuzz_sock.h"
#include "fuzz_target.crpc.h"

#define MAX_CALLS 5
/* An input that keeps the loop busy longer than this is a hang (libFuzzer's -timeout is
 * shorter; this bound is for the replay driver). */
#define MAX_NS (3 * 1000000000ull)

typedef struct slot {
  int done;         /* completions seen: must end at exactly 1 */
  crpc_call *handle;
  crpc_code code;
} slot;

static struct {
  int ready;
  uv_loop_t loop;
  int lfd;
  char dir[128], path[160], endpoint[180];
  size_t baseline;
  /* per input */
  crpc_channel *ch;
  int ch_closed, close_requested;
  int close_in_cb, call_in_cb;
  slot slots[MAX_CALLS];
  int n_started;
  unsigned long codes[CRPC_CODE_COUNT + 1];
} S;

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  ++*(size_t *)arg;
}

static size_t handles(void) {
  size_t n = 0;
  uv_walk(&S.loop, count_handle, &n);
  return n;
}

static void on_ch_closed(void *ud) {
  (void)ud;
  S.ch_closed = 1;
}

static void close_channel(void) {
  if (S.close_requested)
    return;
  S.close_requested = 1;
  crpc_channel_close(S.ch, on_ch_closed, NULL);
}

static int start_call(int i);

static void on_done(const crpc_status *st, const Fuzz__Msg *rep, void *ud) {
  slot *s = ud;
  FUZZ_CHECK(s->done == 0); /* exactly once */
  s->done++;
  FUZZ_CHECK(st != NULL);
  s->code = st->code;
  FUZZ_CHECK((st->code == CRPC_STATUS_OK) == (rep != NULL));
  if (rep != NULL && rep->text != NULL)
    FUZZ_CHECK(strlen(rep->text) < (size_t)1 << 30);
  S.codes[(unsigned)st->code < CRPC_CODE_COUNT ? (unsigned)st->code : CRPC_CODE_COUNT]++;
  if (S.call_in_cb && S.n_started < MAX_CALLS && !S.close_requested) {
    S.call_in_cb = 0;
    start_call(S.n_started);
  }
  if (S.close_in_cb) {
    S.close_in_cb = 0;
    close_channel();
  }
}

static int start_call(int i) {
  Fuzz__Msg req = FUZZ__MSG__INIT;
  req.text = "fuzz";
  req.n = i;
  slot *s = &S.slots[i];
  int rc;
  switch (i % 4) {
  case 0:
    rc = fuzz__target__echo__start(S.ch, &req, NULL, on_done, s, &s->handle);
    break;
  case 1:
    rc = fuzz__target__fail__start(S.ch, &req, NULL, on_done, s, &s->handle);
    break;
  case 2:
    rc = fuzz__target__later__start(S.ch, &req, NULL, on_done, s, &s->handle);
    break;
  default:
    rc = fuzz__target__unimpl__start(S.ch, &req, NULL, on_done, s, &s->handle);
    break;
  }
  if (rc == 0)
    S.n_started = i + 1;
  else
    s->done = 1; /* not started: the callback never runs; count it as completed */
  return rc;
}

static void setup(void) {
  fs_sigpipe_policy();
  FUZZ_CHECK(uv_loop_init(&S.loop) == 0);
  FUZZ_CHECK(fs_socket_path(S.dir, sizeof S.dir, S.path, sizeof S.path) == 0);
  snprintf(S.endpoint, sizeof S.endpoint, "unix:%s", S.path);
  S.lfd = fs_listen(S.path);
  FUZZ_CHECK(S.lfd >= 0);
  S.baseline = handles();
  S.ready = 1;
}

/* One loop turn; connections the channel opens beyond the first are refused at once. */
static void turn(uint64_t *start) {
  uv_run(&S.loop, UV_RUN_NOWAIT);
  FUZZ_CHECK(uv_hrtime() - *start < MAX_NS);
}

static int all_done(void) {
  for (int i = 0; i < S.n_started; i++)
    if (!S.slots[i].done)
      return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  if (!S.ready)
    setup();
  uint8_t cfg = data[0];
  memset(S.slots, 0, sizeof S.slots);
  S.n_started = 0;
  S.ch_closed = S.close_requested = 0;
  S.close_in_cb = (cfg >> 2) & 1;
  S.call_in_cb = (cfg >> 5) & 1;
  uint64_t turns = uv_hrtime();

  FUZZ_CHECK(crpc_channel_new(&S.ch, &S.loop, S.endpoint) == 0);
  /* Reconnects (a call started from a callback after the drop) must not wait for long. */
  FUZZ_CHECK(crpc_channel_set_option(S.ch, CRPC_OPT_BACKOFF_INITIAL_MS, 1) == 0);
  FUZZ_CHECK(crpc_channel_set_option(S.ch, CRPC_OPT_BACKOFF_MAX_MS, 1) == 0);
  if (cfg & 16)
    FUZZ_CHECK(crpc_channel_set_option(S.ch, CRPC_OPT_MAX_RECV_MESSAGE_SIZE, 64) == 0);
  int n_calls = 1 + (cfg & 3);
  for (int i = 0; i < n_calls; i++)
    FUZZ_CHECK(start_call(i) == 0);

  /* Accept the channel's connection. */
  int sfd = -1;
  while (sfd < 0) {
    turn(&turns);
    sfd = fs_accept(S.lfd);
  }
  if ((cfg & 8) && !S.slots[n_calls - 1].done)
    crpc_call_cancel(S.slots[n_calls - 1].handle);

  /* Answer: our preface, then the input, while the channel runs. */
  static const uint8_t preface[8] = {'C', 'R', 'P', 'C', '\r', '\n', 1, 0};
  size_t len = sizeof preface + size - 1, sent = 0;
  uint8_t *out = malloc(len);
  FUZZ_CHECK(out != NULL);
  memcpy(out, preface, sizeof preface);
  memcpy(out + sizeof preface, data + 1, size - 1);
  int gone = 0;
  while (sent < len && !gone) {
    long w = fs_write_some(sfd, out + sent, len - sent);
    if (w < 0)
      break; /* the channel hung up (it may refuse bad input at once) */
    sent += (size_t)w;
    turn(&turns);
    gone = fs_drain(sfd, NULL);
  }
  free(out);
  /* Let the channel read everything before the connection goes, then close it. */
  for (int i = 0; i < 4 && !gone; i++) {
    turn(&turns);
    gone = fs_drain(sfd, NULL);
  }
  close(sfd);

  /* Every call completes (at the latest with UNAVAILABLE when the connection drops). */
  while (!all_done()) {
    turn(&turns);
    int extra = fs_accept(S.lfd);
    if (extra >= 0)
      close(extra);
  }
  close_channel();
  while (!S.ch_closed) {
    turn(&turns);
    int extra = fs_accept(S.lfd);
    if (extra >= 0)
      close(extra);
  }
  for (int i = 0; i < S.n_started; i++)
    FUZZ_CHECK(S.slots[i].done == 1);
  /* Nothing of the channel's may remain on the loop. */
  while (handles() != S.baseline)
    turn(&turns);
  int extra;
  while ((extra = fs_accept(S.lfd)) >= 0)
    close(extra);
  return 0;
}

void fuzz_teardown(void) {
  if (!S.ready)
    return;
  close(S.lfd);
  uv_run(&S.loop, UV_RUN_DEFAULT);
  FUZZ_CHECK(uv_loop_close(&S.loop) == 0);
  fs_socket_path_remove(S.dir, S.path);
  fprintf(stderr, "client_conn codes:");
  for (int i = 0; i <= CRPC_CODE_COUNT; i++)
    fprintf(stderr, " %lu", S.codes[i]);
  fprintf(stderr, "\n");
  S.ready = 0;
}
