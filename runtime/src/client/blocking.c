/* Blocking calls, from any number of threads.
 *
 * Private-loop channels use leader/follower: the first thread to wait becomes the leader and runs
 * the loop itself until its own call completes, so a lone caller never hands off to another
 * thread. Others queue their call (the leader picks it up through the wake handle) and sleep on
 * their own condition variable until their call completes or leadership is free, whichever comes
 * first. A retiring leader wakes one waiter that is still unfinished to take over.
 *
 * Loop channels: the user's thread runs the loop; callers from other threads queue their call and
 * sleep until it completes. */
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "client/call.h"
#include "client/channel.h"
#include "crpc/error.h"


/* Loop thread. Completes w and wakes its thread. */
void crpc__waiter_signal(crpc_channel *ch, crpc__waiter *w) {
  if (w == ch->lead_waiter) {
    w->done = 1; /* the leader's own call, completed on the leader's thread: nobody sleeps on it */
    return;
  }
  uv_mutex_lock(&ch->mu);
  w->done = 1;
  if (w->has_cond) uv_cond_signal(&w->cond); /* without one its thread is not asleep */
  uv_mutex_unlock(&ch->mu);
}

void crpc__waiter_complete(crpc_channel *ch, crpc__waiter *w, const crpc_status *st,
                           ProtobufCMessage *response) {
  w->status = *st;
  w->response = response;
  crpc__waiter_signal(ch, w);
}

static void start_one(crpc_channel *ch, crpc__waiter *w) {
  int cancel = 0;
  if (w->opts && w->opts->cancel) { /* only a token sets it */
    uv_mutex_lock(&ch->mu);
    cancel = w->cancel;
    uv_mutex_unlock(&ch->mu);
  }
  if (cancel) {
    crpc_status st = {.code = CRPC_STATUS_CANCELLED};
    st.message = crpc__strndup("cancelled", 9);
    crpc__waiter_complete(ch, w, &st, NULL);
    return;
  }
  w->started = 1;
  if (w->op) {
    w->op(ch, w);
    return;
  }
  int rc = crpc__call_start(ch, w->method, w->request, w->opts, NULL, NULL, NULL, w, NULL);
  if (rc < 0) {
    w->start_rc = rc;
    crpc__waiter_signal(ch, w);
  }
}

void crpc__blocking_drain(crpc_channel *ch) {
  /* Written under the mutex; a stale 0 only delays a submission to the wake-up it also sent. */
  if (atomic_load_explicit(&ch->nsubmitted, memory_order_acquire) == 0) return;
  crpc__list batch;
  crpc__list_init(&batch);
  uv_mutex_lock(&ch->mu);
  crpc__list_splice(&batch, &ch->submitted);
  atomic_store_explicit(&ch->nsubmitted, 0, memory_order_release);
  uv_mutex_unlock(&ch->mu);
  while (!crpc__list_empty(&batch)) {
    crpc__waiter *w = CRPC__CONTAINER_OF(batch.next, crpc__waiter, link);
    crpc__list_remove(&w->link);
    start_one(ch, w);
  }
}

void crpc__waiter_request_cancel(crpc_channel *ch, crpc__waiter *w) {
  uv_mutex_lock(&ch->mu);
  w->cancel = 1;
  uv_mutex_unlock(&ch->mu);
  uv_async_send(&ch->wake);
}

void crpc__blocking_cancels(crpc_channel *ch) {
  for (crpc__list *e = ch->calls.next; e != &ch->calls;) {
    crpc_call *call = CRPC__CONTAINER_OF(e, crpc_call, core.link);
    e = e->next;
    int cancel = 0;
    if (call->stream && call->stream->blocking) {
      cancel = atomic_load(&call->stream->cancel_req) && !crpc__call_done(call);
    } else if (call->waiter) {
      uv_mutex_lock(&ch->mu);
      cancel = call->waiter->cancel;
      uv_mutex_unlock(&ch->mu);
    }
    if (cancel) {
      crpc__call_abandon(call, CRPC_STATUS_CANCELLED, "cancelled by the client");
      e = ch->calls.next; /* completing a call may have changed the list: start over */
    }
  }
}

void crpc__blocking_cancel_all(crpc_channel *ch) {
  uv_mutex_lock(&ch->mu);
  atomic_store_explicit(&ch->nsubmitted, 0, memory_order_release);
  while (!crpc__list_empty(&ch->submitted)) {
    crpc__waiter *w = CRPC__CONTAINER_OF(ch->submitted.next, crpc__waiter, link);
    crpc__list_remove(&w->link);
    w->start_rc = CRPC_ECLOSED;
    w->done = 1;
    uv_cond_signal(&w->cond);
  }
  uv_mutex_unlock(&ch->mu);
}

/* Leader: drive the private loop until w completes. Called without the mutex. */
static void lead(crpc_channel *ch, crpc__waiter *w) {
  /* Nobody ran this loop since the last call: if that was a while ago, take in what arrived
   * meanwhile (a GOAWAY from an idle timeout, a closed connection) before choosing the
   * connection for this call. Back-to-back calls skip the extra poll. */
  if (ch->ncalls == 0 && ch->conn) {
    uv_update_time(ch->loop);
    if (uv_now(ch->loop) - ch->conn->last_read >= 50) uv_run(ch->loop, UV_RUN_NOWAIT);
  }
  ch->lead_waiter = w;
  for (;;) {
    crpc__blocking_drain(ch);
    if (w->done) break; /* written by this thread only (crpc__waiter_signal's fast path) */
    uv_run(ch->loop, UV_RUN_ONCE);
  }
  ch->lead_waiter = NULL;
  /* Frames queued in the last loop pass after its prepare phase (the CANCEL of a call cancelled
   * by its token or its deadline) would otherwise wait for the next call on this channel, while
   * the server works on for a caller that is gone. */
  crpc__io_flush(&ch->io);
}

/* With the mutex held: wake one sleeper whose call is unfinished, to take over the loop. */
static void pass_leadership(crpc_channel *ch) {
  for (crpc__list *e = ch->waiters.next; e != &ch->waiters; e = e->next) {
    crpc__waiter *o = CRPC__CONTAINER_OF(e, crpc__waiter, wlink);
    if (!o->done) {
      uv_cond_signal(&o->cond);
      return;
    }
  }
}

static void submit(crpc_channel *ch, crpc__waiter *w) { /* mutex held */
  crpc__list_push_back(&ch->submitted, &w->link);
  atomic_store_explicit(&ch->nsubmitted, 1, memory_order_release);
}

/* Mutex held. A waiter gets its condition variable only once it is about to be seen by another
 * thread (submitted, or asleep): a lone caller leads the loop and never sleeps, so it skips the
 * init and destroy. */
static int cond_ready(crpc__waiter *w) {
  if (w->has_cond) return 1;
  if (uv_cond_init(&w->cond) != 0) {
    w->start_rc = CRPC_ENOMEM;
    return 0;
  }
  w->has_cond = 1;
  return 1;
}

/* Called and returns with the mutex held. */
static void wait_done(crpc_channel *ch, crpc__waiter *w) {
  if (ch->closing) {
    w->start_rc = CRPC_ECLOSED;
    return;
  }
  if (!ch->own_loop) {
    if (!cond_ready(w)) return;
    submit(ch, w);
    uv_async_send(&ch->wake);
    while (!w->done) uv_cond_wait(&w->cond, &ch->mu);
    return;
  }
  int queued = 0;
  while (!w->done) {
    if (!ch->leader) {
      ch->leader = 1;
      uv_mutex_unlock(&ch->mu);
      if (!queued) { /* we drive the loop: no need to queue our own call */
        crpc__io_batch_begin(&ch->io); /* its request is written at once, not in the loop */
        start_one(ch, w);
        crpc__io_batch_end(&ch->io);
      }
      lead(ch, w);
      uv_mutex_lock(&ch->mu);
      ch->leader = 0;
      pass_leadership(ch);
    } else {
      if (!queued) { /* the leader may be asleep in the loop: make it pick our call up */
        if (!cond_ready(w)) return;
        submit(ch, w);
        queued = 1;
        uv_async_send(&ch->wake);
      }
      crpc__list_push_back(&ch->waiters, &w->wlink);
      uv_cond_wait(&w->cond, &ch->mu);
      crpc__list_remove(&w->wlink);
    }
  }
}

/* The whole of a blocking function's stay on the channel, in one mutex section at each end:
 * counts the thread in as a blocker (the channel outlives it), attaches token, runs w to
 * completion, counts the thread out. Returns CRPC_ECLOSED when the channel is closing, else
 * w->start_rc; *cancelled when token was cancelled before the call started (w did not run).
 * After it returns the thread must not touch ch. */
static int run_waiter(crpc_channel *ch, crpc__waiter *w, crpc_cancel_token *token,
                      int *cancelled) {
  crpc__list_init(&w->link);
  crpc__list_init(&w->wlink);
  w->has_cond = 0;
  *cancelled = 0;
  uv_mutex_lock(&ch->mu);
  if (ch->closing) {
    uv_mutex_unlock(&ch->mu);
    return CRPC_ECLOSED;
  }
  ch->blockers++;
  if (token) { /* a token's mutex is taken before the channel's (crpc_cancel): not both here */
    uv_mutex_unlock(&ch->mu);
    *cancelled = crpc__token_attach(token, ch, w);
    uv_mutex_lock(&ch->mu);
  }
  if (!*cancelled) wait_done(ch, w);
  if (token && !*cancelled) {
    uv_mutex_unlock(&ch->mu);
    crpc__token_detach(token); /* before leaving: the token must not outlive ch */
    uv_mutex_lock(&ch->mu);
  }
  /* crpc_channel_close() sets closing under the mutex before it waits for idle: nobody waits
   * for this broadcast unless closing is set. */
  if (--ch->blockers == 0 && ch->closing) uv_cond_broadcast(&ch->idle);
  uv_mutex_unlock(&ch->mu);
  if (w->has_cond) uv_cond_destroy(&w->cond);
  return *cancelled ? 0 : w->start_rc;
}

void crpc__blocking_wait_idle(crpc_channel *ch) {
  uv_mutex_lock(&ch->mu);
  while (ch->blockers) uv_cond_wait(&ch->idle, &ch->mu);
  uv_mutex_unlock(&ch->mu);
}

int crpc__blocking_run(crpc_channel *ch, crpc__waiter *w) {
  int cancelled;
  return run_waiter(ch, w, NULL, &cancelled);
}

static void set_error_status(crpc_status *st, int rc) {
  st->code = CRPC_STATUS_INTERNAL;
  st->message = crpc__strndup(crpc_strerror(rc), strlen(crpc_strerror(rc)));
}

int crpc_channel_unary(crpc_channel *ch, const crpc_method_desc *method,
                       const ProtobufCMessage *request, ProtobufCMessage **response,
                       crpc_status *status, const crpc_call_opts *opts) {
  if (response) *response = NULL;
  if (status) memset(status, 0, sizeof *status);
  int rc = 0;
  if (!ch || !method || !request || !response || !status || (opts && opts->timeout_ms < 0)) {
    rc = CRPC_EINVAL;
  } else if (request->descriptor != method->input) {
    rc = CRPC_ETYPE;
  } else if (!ch->own_loop && uv_thread_equal(&ch->loop_thread, &(uv_thread_t){uv_thread_self()})) {
    rc = CRPC_EDEADLK;
  }
  if (rc == 0) {
    crpc__waiter w;
    memset(&w, 0, sizeof w);
    w.method = method;
    w.request = request;
    w.opts = opts;
    int cancelled;
    rc = run_waiter(ch, &w, opts ? opts->cancel : NULL, &cancelled);
    if (cancelled) {
      status->code = CRPC_STATUS_CANCELLED;
      status->message = crpc__strndup("cancelled before it started", 27);
      return 0;
    }
    if (rc == 0) {
      *response = w.response;
      *status = w.status;
    }
  }
  if (rc != 0 && status) set_error_status(status, rc);
  return rc;
}
