/* The one-loop fixture (sem): one loop on the test's thread holding a loop server, loop channels
 * and raw peers (rawpeer.h), with waits that run the loop until a condition holds (bounded in
 * time).
 *
 * Server side: the Echo and Nest methods of the test service itest.Test (itest.proto; its
 * streaming methods answer UNIMPLEMENTED here, stream.h serves them). The Echo handler answers at
 * once, after delay_ms, fails with fail_code, holds the call (sem_held: the test finishes it), or
 * answers reply_size bytes; a test may install a hook instead. Nest echoes its request, or answers
 * env->nest_reply when set. Handler counters live in sem_env and are touched on the loop thread
 * only.
 *
 * Raw side: the raw peer of rawpeer.h (ts_raw, ts_fake), pumped by the waits. */
#ifndef SEM_HARNESS_H
#define SEM_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "loop.h"

#include "rawpeer.h"
#include "itest.crpc.h"

/* ---- Time and waits ------------------------------------------------------------------------- */

typedef struct sem_env sem_env;
typedef int (*sem_pred)(void *arg);

/* Runs the loop until pred(arg) holds (checked at least every 2 ms) or timeout_ms passed.
 * Returns 1 when it held. */
/* cmocka group fixtures: a fresh sem_env per test (in *state), finished and freed after it. */
int sem_setup(void **state);
int sem_teardown(void **state);

int sem_run_until(sem_env *e, sem_pred pred, void *arg, uint64_t timeout_ms);
/* Runs the loop for ms (for what must NOT happen to show up). */
void sem_run_for(sem_env *e, uint64_t ms);
/* Runs until *value >= target; fails the test (with what) after timeout_ms. */
void sem_wait_count(sem_env *e, const int *value, int target, uint64_t timeout_ms,
                    const char *what);

/* ---- Server ---------------------------------------------------------------------------------- */

typedef struct sem_opt {
  crpc_option opt;
  int64_t value;
} sem_opt;

#define SEM_MAX_HELD 64

typedef struct sem_held {
  sem_env *env;
  crpc_server_call *call;   /* NULL once finished */
  int cancels;              /* on_cancel invocations */
  int64_t time_left0;       /* crpc_server_call_time_left_ms() when it arrived */
  int64_t time_left_cancel; /* ... and when on_cancel ran */
  uint64_t arrived_ms, cancel_ms;
} sem_held;

typedef void (*sem_echo_hook)(sem_env *e, crpc_server_call *call, const Itest__EchoRequest *req);

struct sem_env {
  uv_loop_t loop;
  uv_timer_t tick;          /* keeps uv_run(ONCE) short during waits */
  crpc_server *srv;         /* NULL once closed */
  int port;
  char endpoint[64];
  int server_closes;        /* close/shutdown callbacks run */
  /* Handler state. */
  int echo_calls, nest_calls, finished;
  int64_t last_time_left;
  sem_held held[SEM_MAX_HELD];
  int nheld;
  int finish_on_cancel;     /* held calls are failed CANCELLED from on_cancel */
  sem_echo_hook hook;
  void *hook_data;
  const Itest__Node *nest_reply;
  int delayed_pending;
  crpc_channel *channels[16]; /* opened by sem_channel, not yet closed: closed by sem_env_finish */
};

void sem_env_init(sem_env *e);
/* Starts a loop server on 127.0.0.1 (any port) with the options given. */
void sem_server_start(sem_env *e, const sem_opt *opts, size_t n);
/* Finishes every held call, closes the server and waits (bounded) for its close callback. */
void sem_server_close(sem_env *e);
/* Closes what is left and asserts the loop closes with no handle left. */
void sem_env_finish(sem_env *e);

/* Holds a call (the default for hold = true). Returns its slot. */
sem_held *sem_hold(sem_env *e, crpc_server_call *call);
/* Finishes a held call OK (empty payload); returns crpc_server_call_reply()'s result. */
int sem_held_reply(sem_held *h);
/* Finishes every held call not yet finished with CANCELLED. */
void sem_finish_held(sem_env *e);

/* ---- Channels and calls ---------------------------------------------------------------------- */

crpc_channel *sem_channel(sem_env *e, const char *target, const sem_opt *opts, size_t n);
/* For a channel the test closes itself: sem_env_finish() will not close it. */
void sem_channel_forget(sem_env *e, crpc_channel *ch);
/* Closes a loop channel and waits for its close callback (once). */
void sem_channel_close(sem_env *e, crpc_channel *ch);

#define SEM_MAX_TRAILERS 8

/* One async call's outcome, deep-copied. */
typedef struct sem_rec {
  int completions;
  uint64_t done_ms;
  crpc_code code;
  char message[512];
  int has_message;
  uint8_t details[256];
  size_t details_len;
  int has_details;
  size_t trailers_count;
  struct {
    char key[64];
    uint8_t value[600];
    size_t value_len;
  } trailers[SEM_MAX_TRAILERS];
  int has_response;
  size_t payload_len;
  unsigned depth; /* Nest: levels of the response */
} sem_rec;

void sem_rec_status(sem_rec *r, const crpc_status *st); /* copies st into r (no counting) */
void sem_rec_echo(const crpc_status *st, const Itest__EchoReply *resp, void *ud /* sem_rec */);
void sem_rec_nest(const crpc_status *st, const Itest__Node *resp, void *ud /* sem_rec */);
/* Starts Echo with req on ch, recording into r; asserts the start succeeded. */
crpc_call *sem_start(crpc_channel *ch, const Itest__EchoRequest *req, const crpc_call_opts *o,
                     sem_rec *r);
/* Runs until r completed; fails the test after timeout_ms. */
void sem_wait_rec(sem_env *e, sem_rec *r, uint64_t timeout_ms);

/* A chain of n Node messages (n >= 1), the top one first; free with sem_chain_free. */
Itest__Node *sem_chain(unsigned n);
void sem_chain_free(Itest__Node *top);
unsigned sem_chain_depth(const Itest__Node *top);

/* Runs fn(arg) on a new thread while the loop runs; returns when it has returned (bounded). */
void sem_in_thread(sem_env *e, void (*fn)(void *), void *arg, uint64_t timeout_ms);

#endif
