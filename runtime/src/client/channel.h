/* The channel object, shared by channel.c (connecting, lifecycle), call.c (calls) and blocking.c
 * (blocking calls from any thread). */
#ifndef CRPC_CHANNEL_INTERNAL_H
#define CRPC_CHANNEL_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <uv.h>

#include "conn/conn.h"
#include "crpc/channel.h"
#include "call/deadline.h"
#include "call/pool.h"
#include "transport/endpoint.h"
#include "base/list.h"

enum crpc__ch_state {
  CRPC__CH_IDLE,       /* no connection; the next call connects */
  CRPC__CH_CONNECTING, /* resolving / connecting; calls queue on the new connection */
  CRPC__CH_READY,      /* connected */
  CRPC__CH_BACKOFF     /* the last attempt failed; calls fail fast until the backoff timer */
};

typedef struct crpc__attempt crpc__attempt;
typedef struct crpc__waiter crpc__waiter;

struct crpc_channel {
  uv_loop_t *loop;
  int own_loop;
  uv_loop_t own;           /* the private loop, when own_loop */
  uv_thread_t loop_thread; /* loop channels: the thread that created it (the loop's) */
  char *target;
  crpc__endpoint ep;
  int64_t opt[CRPC_OPT_COUNT_];
  int used;                /* a call was made: options are frozen */
  crpc__io_ctx io;

  /* Connection management (channel.c). */
  int state;               /* enum crpc__ch_state */
  crpc__conn *conn;        /* the connection new calls go on (CONNECTING or READY) */
  crpc__list conns;        /* every live connection, the current one and draining ones */
  uv_getaddrinfo_t *gai;   /* the resolution the current attempt waits for, or NULL; one that
                              could not be cancelled finishes on its own and is ignored */
  struct addrinfo *ai_list, *ai_next;
  crpc__attempt *attempt;  /* connect in progress */
  uv_timer_t timer;        /* connect timeout, or backoff */
  uv_timer_t keepalive;    /* periodic keepalive check, when KEEPALIVE_TIME_MS is set */
  unsigned failures;       /* consecutive failed connection attempts */
  uint64_t backoff_until;  /* loop time when BACKOFF ends (a private loop may not run its timer) */
  uint64_t rng;            /* jitter */
  char *last_error;        /* why the last connection attempt failed */

  /* Calls (call.c). */
  crpc__list calls;        /* live calls */
  size_t ncalls;
  crpc__list deferred;     /* calls that failed at start, completed from the loop */
  crpc__call_pool pool;    /* spare call objects */
  crpc__deadlines deadlines;

  /* Blocking calls (blocking.c). */
  uv_mutex_t mu;
  uv_async_t wake;         /* other threads' submissions; deferred completions */
  crpc__list submitted;    /* waiters whose call is not started yet (guarded by mu) */
  atomic_int nsubmitted;   /* non-zero while submitted may hold some (written under mu) */
  crpc__list waiters;      /* followers waiting for leadership or completion (mu) */
  int leader;              /* a thread drives the private loop (mu) */
  crpc__waiter *lead_waiter; /* the leader's own waiter (leader thread only) */
  int blockers;            /* threads inside a blocking function (mu): the channel outlives them */
  uv_cond_t idle;          /* signalled when blockers drops to 0 */

  /* Close. */
  int closing;
  int pending;             /* asynchronous teardown steps still to finish */
  int io_closed;           /* the flusher handle has been closed (the very last step) */
  crpc_close_cb close_cb;
  void *close_ud;
};

struct crpc__waiter {
  crpc__list link;  /* ch->submitted until its call is started */
  crpc__list wlink; /* ch->waiters while it sleeps */
  uv_cond_t cond;   /* initialised only when has_cond (blocking.c) */
  int has_cond;     /* (mu) */
  const crpc_method_desc *method;
  const ProtobufCMessage *request;
  const crpc_call_opts *opts;
  int done;         /* guarded by ch->mu */
  int cancel;       /* a token asked to cancel (ch->mu) */
  int started;      /* its call exists (loop thread) */
  int start_rc;     /* the call could not be started: this error */
  ProtobufCMessage *response;
  crpc_status status;
  /* A blocking stream operation instead of a unary call: op runs on the loop thread; it finishes
   * the waiter at once or parks it on the stream until an event does. */
  void (*op)(crpc_channel *ch, crpc__waiter *w);
  void *stream;           /* crpc_call of the stream */
  const ProtobufCMessage *msg_in;
  int result;
};

/* Finishes a waiter (loop thread): wakes its thread. */
void crpc__waiter_signal(crpc_channel *ch, crpc__waiter *w);
/* Runs w->op on the loop (driving it if this thread may) and waits until the waiter finishes.
 * Returns 0, CRPC_ECLOSED when the channel is closing, or CRPC_ENOMEM. The thread must not touch
 * the channel after it returns unless it knows the channel is still open. */
int crpc__blocking_run(crpc_channel *ch, crpc__waiter *w);
/* Close: waits until no thread is inside a blocking function any more (they have all been
 * completed by then and only need to get out). */
void crpc__blocking_wait_idle(crpc_channel *ch);

/* channel.c: the connection new calls should go on, connecting if needed; NULL when the channel
 * is backing off after a failure (ch->last_error says why). */
crpc__conn *crpc__channel_conn(crpc_channel *ch);
/* channel.c: a call was added to or removed from conn (keeps idle connections from holding the
 * user's loop open; closes drained connections). */
void crpc__channel_call_added(crpc_channel *ch, crpc__conn *conn);
void crpc__channel_call_removed(crpc_channel *ch, crpc__conn *conn);
/* channel.c: completes a close once every asynchronous step is done. */
void crpc__channel_maybe_free(crpc_channel *ch);

/* blocking.c */
void crpc__blocking_drain(crpc_channel *ch);        /* start submitted calls (loop thread) */
void crpc__blocking_cancel_all(crpc_channel *ch);   /* channel closing: fail unstarted ones */
/* Cancellation tokens (cancel.c) and their effect (blocking.c). attach returns 1 when the token
 * is cancelled already (nothing attached). request_cancel: any thread, token lock held. */
int crpc__token_attach(crpc_cancel_token *t, crpc_channel *ch, crpc__waiter *w);
void crpc__token_detach(crpc_cancel_token *t);
void crpc__waiter_request_cancel(crpc_channel *ch, crpc__waiter *w);
void crpc__blocking_cancels(crpc_channel *ch); /* loop thread: carry out requested cancels */
/* Hands the outcome to a blocking caller; st's memory (malloc'd) and response become its. */
void crpc__waiter_complete(crpc_channel *ch, crpc__waiter *w, const crpc_status *st,
                           ProtobufCMessage *response);

#endif
