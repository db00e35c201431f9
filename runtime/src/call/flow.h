/* Per-call flow control and the queue of received stream messages (either side).
 *
 * Each direction of a call starts with a window of CRPC__STREAM_WINDOW bytes. A sender may send a
 * message while its window is above zero (so one message may overshoot it) and subtracts the
 * message's length; WINDOW frames from the receiver add credit back as its application reads.
 * A receiver therefore holds at most window + one message of unread bytes per call. */
#ifndef CRPC_FLOW_H
#define CRPC_FLOW_H

#include <stddef.h>
#include <stdint.h>

#define CRPC__STREAM_WINDOW 65536 /* the protocol's initial window, both directions */
/* The largest a window may become (PROTOCOL.md §6.8, as HTTP/2): a WINDOW frame that would take
 * the sender's window above it is a flow-control error of its call. Receivers never grant past
 * it: CRPC_OPT_STREAM_WINDOW is at most 2^30. */
#define CRPC__MAX_WINDOW INT64_C(2147483647)

typedef struct crpc__msg {
  struct crpc__msg *next;
  size_t len;
  uint8_t data[];
} crpc__msg;

typedef struct crpc__flow {
  int64_t send_window;  /* what we may still send */
  int64_t peer_window;  /* what the peer may still send us */
  uint64_t window;      /* our receive window */
  uint64_t consumed;    /* bytes our application read that we have not granted back yet */
  crpc__msg *head, *tail; /* received, not yet read */
  int blocked;          /* a write was refused for want of window */
} crpc__flow;

void crpc__flow_init(crpc__flow *f, uint64_t window);
/* Drops the queue. */
void crpc__flow_free(crpc__flow *f);
/* The extra credit to grant right at the start (window beyond the protocol's initial one). */
uint32_t crpc__flow_initial_grant(crpc__flow *f);
/* A message of len bytes arrived: 0, or -1 when the peer had no window (a flow-control error). */
int crpc__flow_receive(crpc__flow *f, size_t len);
/* Queues a copy of a received message: 0, or -1 when out of memory. */
int crpc__flow_push(crpc__flow *f, const uint8_t *data, size_t len);
/* Takes the oldest queued message (the caller frees it with crpc__free), or NULL. */
crpc__msg *crpc__flow_pop(crpc__flow *f);
/* The application read len bytes: returns the credit to send in a WINDOW frame now, or 0. */
uint32_t crpc__flow_consumed(crpc__flow *f, size_t len);
/* What a message of len payload bytes costs against a window: its frame header too, so that
 * empty messages cannot be queued for free. */
static inline size_t crpc__flow_cost(size_t len) { return len + 12; }
/* May we send now? */
static inline int crpc__flow_can_send(const crpc__flow *f) { return f->send_window > 0; }
/* We sent len bytes. */
static inline void crpc__flow_sent(crpc__flow *f, size_t len) { f->send_window -= (int64_t)len; }
/* A WINDOW frame granted inc: returns 1 when a refused writer should now be told, 0 otherwise,
 * or -1 (the window unchanged) when it would take the window above CRPC__MAX_WINDOW. */
int crpc__flow_credit(crpc__flow *f, uint32_t inc);

#endif
