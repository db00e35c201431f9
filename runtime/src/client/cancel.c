/* Cancellation tokens: how another thread cancels a blocking call. The token only records the
 * request and wakes the channel's loop; the loop thread does the cancelling (crpc__blocking_cancels),
 * so that no call state is touched from a foreign thread. Lock order: token, then channel. */
#include <stdatomic.h>

#include "base/alloc.h"
#include "client/channel.h"
#include "crpc/error.h"

struct crpc_cancel_token {
  uv_mutex_t mu;
  atomic_int cancelled;
  crpc_channel *ch;   /* the call using the token (guarded by mu) */
  crpc__waiter *w;
};

int crpc_cancel_token_new(crpc_cancel_token **out) {
  if (!out) return CRPC_EINVAL;
  crpc_cancel_token *t = crpc__calloc(1, sizeof *t);
  if (!t) return CRPC_ENOMEM;
  if (uv_mutex_init(&t->mu) != 0) {
    crpc__free(t);
    return CRPC_ENOMEM;
  }
  atomic_init(&t->cancelled, 0);
  *out = t;
  return 0;
}

void crpc_cancel_token_free(crpc_cancel_token *t) {
  if (!t) return;
  uv_mutex_destroy(&t->mu);
  crpc__free(t);
}

int crpc_cancel_token_cancelled(const crpc_cancel_token *t) {
  return t ? atomic_load(&((crpc_cancel_token *)t)->cancelled) : 0;
}

void crpc_cancel_token_reset(crpc_cancel_token *t) {
  if (t) atomic_store(&t->cancelled, 0);
}

void crpc_cancel_token_cancel(crpc_cancel_token *t) {
  if (!t) return;
  atomic_store(&t->cancelled, 1);
  uv_mutex_lock(&t->mu);
  if (t->w) crpc__waiter_request_cancel(t->ch, t->w);
  uv_mutex_unlock(&t->mu);
}

int crpc__token_attach(crpc_cancel_token *t, crpc_channel *ch, crpc__waiter *w) {
  uv_mutex_lock(&t->mu);
  int cancelled = atomic_load(&t->cancelled);
  if (!cancelled) {
    t->ch = ch;
    t->w = w;
  }
  uv_mutex_unlock(&t->mu);
  return cancelled;
}

void crpc__token_detach(crpc_cancel_token *t) {
  uv_mutex_lock(&t->mu);
  t->ch = NULL;
  t->w = NULL;
  uv_mutex_unlock(&t->mu);
}
