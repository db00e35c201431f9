/* The streaming fixture: one libuv loop on the test's thread holds a loop server for the streaming
 * methods and UnaryCall of the test service itest.Test (itest.proto) and the test's loop channels;
 * waits run that loop until a condition holds, bounded in time, so nothing sleeps to synchronise.
 * Its Echo and Nest answer UNIMPLEMENTED here (itest.h and sem.h serve them). Blocking
 * clients run on a helper thread while the loop serves them. The service implementation
 * (st_service_*) only uses crpc's API, so a child process can serve it on a private loop.
 *
 * Server behaviour (every handler honours CRPC_EAGAIN: it stops writing and resumes from
 * on_writable):
 *   StreamingOutput  the responses the request names, then flood_count responses of flood_size
 *                    bytes, then OK
 *   StreamingInput   explicit reads; answers the sum of the payload sizes once the client closes
 *   FullDuplex       auto_read; each request answered with the responses it names; OK once the
 *                    client has closed and everything is written
 *   Sink             holds the call without reading until st_sink_release(); any number of Sink
 *                    calls may be held at once (each keeps its own state)
 *   UnaryCall        one response of responses[0].size bytes (none asked: the request payload's
 *                    size), the request's metadata sent back as trailers; with hold, the call is
 *                    held until it is cancelled or st_unary_release()
 * A cancelled call (on_cancel) is counted and ended with CANCELLED. */
#ifndef ST_HARNESS_H
#define ST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include <crpc/crpc.h>

#include "loop.h"

#include "itest.crpc.h"

/* ---- Service ---------------------------------------------------------------------------------- */

typedef struct st_call st_call;

#define ST_MAX_HELD 64

typedef struct st_unary {
  crpc_server_call *call;
  const Itest__OutputRequest *req;
} st_unary;

typedef struct st_counters {
  int started[5];      /* per method, in .proto order */
  int ended_ok;        /* calls the service ended with OK */
  int cancels;         /* on_cancel callbacks */
  int requests;        /* client messages read (all methods) */
  int written;         /* responses written (all methods) */
  int eagain;          /* writes refused with CRPC_EAGAIN */
  int writable;        /* on_writable callbacks */
  int flood_written;   /* StreamingOutput flood responses written so far (last flood call) */
  int sinks_held;      /* Sink calls held now (started, not yet released or ended) */
  st_call *sink;       /* the held Sink calls, most recent first (a list through st_call) */
  st_unary unary[ST_MAX_HELD]; /* the held UnaryCall calls */
  int unary_held;
} st_counters;

extern const Itest__Test__Handlers st_service_handlers; /* user_data: st_counters */
/* Lets every held Sink call read (auto_read) and finish; at least one must be held. */
void st_sink_release(st_counters *c);
/* Answers every held UnaryCall call (as if it had not been held); at least one must be held. */
void st_unary_release(st_counters *c);

/* ---- Environment ------------------------------------------------------------------------------ */

typedef struct st_env {
  uv_loop_t loop;
  uv_timer_t tick;     /* keeps uv_run(ONCE) short while waiting */
  crpc_server *srv;
  int port;
  char endpoint[128];  /* what channels connect to */
  st_counters counters;
  crpc_channel *ch;    /* the loop channel of st_env_start, closed by st_env_finish */
  int closes;          /* close callbacks run */
} st_env;

/* Loop, server (127.0.0.1, any port, STREAM_WINDOW default) and one loop channel to it. */
void st_env_start(st_env *e);
/* The same on the endpoint `listen` (a TCP port 0 is replaced with the port picked). */
void st_env_start_at(st_env *e, const char *listen);
/* Closes channel and server, runs the loop dry and asserts no handle is left. */
void st_env_finish(st_env *e);
/* cmocka fixtures: a fresh st_env (st_env_start) per test in *state, finished and freed after. */
int st_setup(void **state);
int st_teardown(void **state);

typedef int (*st_pred)(void *arg);
/* Runs the loop until pred(arg) holds or timeout_ms passed; 1 when it held. */
int st_run_until(st_env *e, st_pred pred, void *arg, uint64_t timeout_ms);
void st_run_for(st_env *e, uint64_t ms);
/* Runs until *value >= target or fails the test (naming what) after timeout_ms. */
void st_wait_count(st_env *e, const int *value, int target, uint64_t timeout_ms, const char *what);
/* Runs fn(arg) on a helper thread while the loop runs; aborts when it is still running after
 * timeout_ms (it uses the caller's stack). */
void st_in_thread(st_env *e, void (*fn)(void *), void *arg, uint64_t timeout_ms);

/* ---- Client side ------------------------------------------------------------------------------ */

#define ST_MAX_SEEN 256

/* What an async client stream saw, recorded by the st_rec_* callbacks. */
typedef struct st_rec {
  st_env *env;
  crpc_stream *s;      /* NULL once done */
  int done;            /* on_done calls (must end at 1) */
  crpc_code code;
  char message[256];
  int nread;
  int sizes[ST_MAX_SEEN]; /* payload sizes of the responses, in arrival order */
  int seqs[ST_MAX_SEEN];
  int64_t aggregated;  /* client streaming: the one response */
  int writable;        /* on_writable calls */
  void *user;          /* for the test */
} st_rec;

void st_rec_init(st_rec *r, st_env *e);
void st_rec_out(crpc_stream *s, const Itest__OutputResponse *msg, void *ud);
void st_rec_in(crpc_stream *s, const Itest__InputResponse *msg, void *ud);
void st_rec_done(crpc_stream *s, const crpc_status *status, void *ud);
void st_rec_writable(crpc_stream *s, void *ud);
/* Runs until r is done; fails after timeout_ms. */
void st_wait_done(st_env *e, st_rec *r, uint64_t timeout_ms);

/* Writes one message with the typed stub (StreamingInput: an InputRequest of `size` payload
 * bytes; FullDuplex: an OutputRequest asking for `sizes`, with `payload` bytes), waiting for
 * on_writable (at most ST_WAIT_MS each time) while the window is used up. */
#define ST_WAIT_MS 20000
void st_write_input(st_env *e, st_rec *r, int size);
void st_write_duplex(st_env *e, st_rec *r, const int *sizes, size_t n, int payload);

/* Requests whose payload is `size` bytes of a pattern derived from size (st_payload_ok checks
 * it); *_free releases the buffer. */
#define ST_MAX_WANTED 8
typedef struct st_outreq {
  Itest__OutputRequest req;
  Itest__Blob blob;
  Itest__Wanted w[ST_MAX_WANTED];
  Itest__Wanted *wp[ST_MAX_WANTED];
} st_outreq;
void st_outreq_init(st_outreq *o, const int *sizes, size_t n, int payload_size);
void st_outreq_free(st_outreq *o);

typedef struct st_inreq {
  Itest__InputRequest req;
  Itest__Blob blob;
} st_inreq;
void st_inreq_init(st_inreq *o, int size);
void st_inreq_free(st_inreq *o);

/* A payload of size bytes of the pattern (malloc'd), and its check. */
uint8_t *st_pattern(int size);
int st_payload_ok(const Itest__Blob *b, int size);

#endif
