#include "call/flow.h"

#include <string.h>

#include "base/alloc.h"

void crpc__flow_init(crpc__flow *f, uint64_t window) {
  memset(f, 0, sizeof *f);
  f->send_window = CRPC__STREAM_WINDOW;
  f->peer_window = CRPC__STREAM_WINDOW;
  f->window = window < CRPC__STREAM_WINDOW ? CRPC__STREAM_WINDOW : window;
}

void crpc__flow_free(crpc__flow *f) {
  crpc__msg *m;
  while ((m = crpc__flow_pop(f)) != NULL) crpc__free(m);
}

uint32_t crpc__flow_initial_grant(crpc__flow *f) {
  uint64_t extra = f->window - CRPC__STREAM_WINDOW;
  if (extra > UINT32_MAX) extra = UINT32_MAX;
  f->peer_window += (int64_t)extra;
  return (uint32_t)extra;
}

int crpc__flow_receive(crpc__flow *f, size_t len) {
  if (f->peer_window <= 0) return -1;
  f->peer_window -= (int64_t)len;
  return 0;
}

int crpc__flow_push(crpc__flow *f, const uint8_t *data, size_t len) {
  crpc__msg *m = crpc__malloc(sizeof *m + (len ? len : 1));
  if (!m) return -1;
  m->next = NULL;
  m->len = len;
  if (len) memcpy(m->data, data, len);
  if (f->tail)
    f->tail->next = m;
  else
    f->head = m;
  f->tail = m;
  return 0;
}

crpc__msg *crpc__flow_pop(crpc__flow *f) {
  crpc__msg *m = f->head;
  if (!m) return NULL;
  f->head = m->next;
  if (!f->head) f->tail = NULL;
  return m;
}

uint32_t crpc__flow_consumed(crpc__flow *f, size_t len) {
  f->consumed += len;
  /* Grant in batches of half a window: fewer WINDOW frames, the sender never starves. */
  if (f->consumed < f->window / 2) return 0;
  uint64_t inc = f->consumed > UINT32_MAX ? UINT32_MAX : f->consumed;
  f->consumed -= inc;
  f->peer_window += (int64_t)inc;
  return (uint32_t)inc;
}

int crpc__flow_credit(crpc__flow *f, uint32_t inc) {
  /* send_window <= CRPC__MAX_WINDOW always, so the comparison cannot overflow. */
  if (f->send_window > CRPC__MAX_WINDOW - (int64_t)inc) return -1;
  int was_closed = f->send_window <= 0;
  f->send_window += inc;
  if (was_closed && f->send_window > 0 && f->blocked) {
    f->blocked = 0;
    return 1;
  }
  return 0;
}
