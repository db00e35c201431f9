/* Client calls: one outgoing RPC from start to its single completion. */
#ifndef CRPC_CALL_H
#define CRPC_CALL_H

#include "arena.h"
#include "crpc/channel.h"
#include "dlheap.h"
#include "frame.h"
#include "list.h"

typedef struct crpc__conn crpc__conn;
typedef struct crpc__waiter crpc__waiter;

struct crpc_call {
  crpc_channel *ch;
  const crpc_method_desc *method;
  crpc__conn *conn;      /* where it is tracked; NULL when not (yet, or any more) */
  uint32_t id;
  crpc_unary_cb cb;      /* async completion, or NULL for a blocking call */
  crpc_fn user_fn;
  void *user_data;
  crpc__waiter *waiter;  /* blocking call: where the outcome goes */
  crpc__dl_node dl;      /* deadline */
  int64_t timeout_ms;    /* as requested, for the message */
  int done;              /* completed (its callback may be running) */
  crpc__list link;       /* channel: live calls, or deferred failures, or the free pool */
  crpc_code fail_code;   /* deferred failure */
  char *fail_why;
  crpc__arena arena;
};

/* How a call ended, as received (pointers into the frame, valid during completion only). */
typedef struct crpc__result {
  crpc_code code;
  const char *text;
  size_t text_len;
  const uint8_t *details;
  size_t details_len;
  const uint8_t *trailers; /* encoded metadata block */
  uint32_t trailers_len;
  const uint8_t *msg;      /* encoded response when code is OK */
  size_t msg_len;
} crpc__result;

/* Starts a call (loop thread). Exactly one of cb / waiter is set. Returns 0 (the call will
 * complete exactly once, never before this returns if it has a cb) or a negative error (nothing
 * was started). */
int crpc__call_start(crpc_channel *ch, const crpc_method_desc *method,
                     const ProtobufCMessage *request, const crpc_call_opts *opts,
                     crpc_unary_cb cb, crpc_fn user_fn, void *user_data, crpc__waiter *waiter,
                     crpc_call **call_out);

/* From the connection: the call's STATUS arrived (the call is already untracked). */
void crpc__call_on_status(void *call, const crpc__status_hdr *st);
/* From the connection or the channel: the call ends with code/why (untracked already, or not
 * sent yet). */
void crpc__call_fail(void *call, crpc_code code, const char *why);
/* Ends a call the server may still be working on: untracks it, tells the server (CANCEL), and
 * completes it with code/why. */
void crpc__call_abandon(crpc_call *call, crpc_code code, const char *why);
/* Runs the failures deferred so that no callback runs inside crpc_channel_unary_async(). */
void crpc__call_run_deferred(crpc_channel *ch);
/* Fires the deadlines that have passed and re-arms the channel's timer. */
void crpc__call_expire(crpc_channel *ch);
/* Frees the pool of spare call objects. */
void crpc__call_pool_free(crpc_channel *ch);

#endif
