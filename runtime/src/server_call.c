/* Server calls: decode, dispatch to the handler, and the handler's single finish. */
#include "server_call.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "crpc/error.h"
#include "server_internal.h"

#define CRPC__SCALL_POOL_MAX 64

static crpc_server_call *scall_alloc(crpc_server *srv) {
  crpc_server_call *sc;
  if (!crpc__list_empty(&srv->pool)) {
    sc = CRPC__CONTAINER_OF(srv->pool.next, crpc_server_call, link);
    crpc__list_remove(&sc->link);
    srv->npool--;
  } else {
    sc = crpc__malloc(sizeof *sc);
    if (!sc) return NULL;
    crpc__arena_init(&sc->arena);
  }
  sc->srv = srv;
  sc->conn = NULL;
  sc->id = 0;
  sc->entry = NULL;
  sc->request = NULL;
  sc->cancelled = 0;
  crpc__list_init(&sc->link);
  return sc;
}

static void scall_release(crpc_server_call *sc) {
  crpc_server *srv = sc->srv;
  crpc__list_remove(&sc->link);
  crpc__arena_reset(&sc->arena);
  if (srv->npool < CRPC__SCALL_POOL_MAX && !srv->closing) {
    crpc__list_push_back(&srv->pool, &sc->link);
    srv->npool++;
  } else {
    crpc__arena_destroy(&sc->arena);
    crpc__free(sc);
  }
}

void crpc__server_calls_free(crpc_server *srv) {
  crpc__list *lists[] = {&srv->pool, &srv->calls};
  for (size_t i = 0; i < 2; i++) {
    while (!crpc__list_empty(lists[i])) {
      crpc_server_call *sc = CRPC__CONTAINER_OF(lists[i]->next, crpc_server_call, link);
      crpc__list_remove(&sc->link);
      crpc__arena_destroy(&sc->arena);
      crpc__free(sc);
    }
  }
  srv->npool = 0;
  srv->ncalls = 0;
}

static void refuse(crpc__conn *c, uint32_t id, crpc_code code, const char *fmt, const char *name,
                   size_t name_len) {
  char text[CRPC__MAX_METHOD_LEN + 128];
  snprintf(text, sizeof text, fmt, (int)name_len, name);
  crpc__conn_send_status(c, id, code, text);
}

void crpc__server_on_call(crpc__conn *c, const crpc__frame *f, const crpc__call_hdr *h) {
  crpc_server *srv = c->ctx->owner;
  uint32_t id = f->call_id;
  if (srv->closing) {
    refuse(c, id, CRPC_STATUS_UNAVAILABLE, "%.*s: server is closing", h->method, h->method_len);
    return;
  }
  const crpc__reg_entry *e = crpc__registry_find(&srv->reg, h->method, h->method_len);
  if (!e) {
    refuse(c, id, CRPC_STATUS_UNIMPLEMENTED, "unknown method %.*s", h->method, h->method_len);
    return;
  }
  if (!e->method->dispatch) {
    refuse(c, id, CRPC_STATUS_UNIMPLEMENTED, "%.*s: streaming methods are not served yet",
           h->method, h->method_len);
    return;
  }
  if (!h->message) {
    refuse(c, id, CRPC_STATUS_INTERNAL, "%.*s: unary call without a request message", h->method,
           h->method_len);
    return;
  }
  if (c->calls.count >= (size_t)srv->opt[CRPC_OPT_MAX_CALLS_PER_CONN]) {
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED,
           "%.*s: too many calls in progress on this connection", h->method, h->method_len);
    return;
  }
  crpc_server_call *sc = scall_alloc(srv);
  if (!sc) {
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED, "%.*s: server out of memory", h->method,
           h->method_len);
    return;
  }
  sc->request = protobuf_c_message_unpack(e->method->input, &sc->arena.pb, h->message_len,
                                          h->message);
  if (!sc->request) {
    scall_release(sc);
    char text[CRPC__MAX_METHOD_LEN + 160];
    snprintf(text, sizeof text, "%.*s: request does not decode as %s", (int)h->method_len,
             h->method, e->method->input->name);
    crpc__conn_send_status(c, id, CRPC_STATUS_INTERNAL, text);
    return;
  }
  if (crpc__conn_track(c, id, sc) != 0) {
    scall_release(sc);
    refuse(c, id, CRPC_STATUS_RESOURCE_EXHAUSTED, "%.*s: server out of memory", h->method,
           h->method_len);
    return;
  }
  sc->conn = c;
  sc->id = id;
  sc->entry = e;
  crpc__list_push_back(&srv->calls, &sc->link);
  srv->ncalls++;
  e->method->dispatch(sc, sc->request, e->impl, e->user_data);
}

void crpc__server_call_detach(void *p) {
  crpc_server_call *sc = p;
  sc->conn = NULL;
  sc->cancelled = 1;
}

/* The handler's finish: send what there is to send, release the call. */
static void scall_finish(crpc_server_call *sc, crpc_code code, const char *text,
                         const ProtobufCMessage *resp) {
  crpc_server *srv = sc->srv;
  crpc__conn *c = sc->conn;
  if (c && crpc__conn_untrack(c, sc->id)) {
    size_t len = resp ? protobuf_c_message_get_packed_size(resp) : 0;
    char big[160];
    if (resp && len > (uint64_t)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]) {
      snprintf(big, sizeof big, "%s: response of %zu bytes exceeds MAX_SEND_MESSAGE_SIZE (%lld)",
               sc->entry->method->full_name, len, (long long)srv->opt[CRPC_OPT_MAX_SEND_MESSAGE_SIZE]);
      code = CRPC_STATUS_RESOURCE_EXHAUSTED;
      text = big;
      resp = NULL;
    }
    if (resp) {
      size_t fixed = crpc__status_fixed_size(0, 0, 0);
      uint8_t *p = crpc__conn_reserve(c, CRPC__HDR_LEN + fixed + len);
      if (p) {
        crpc__hdr_encode(p, CRPC__F_STATUS, CRPC__FL_MESSAGE, sc->id, (uint32_t)(fixed + len));
        p = crpc__status_fixed_encode(p + CRPC__HDR_LEN, CRPC_STATUS_OK, NULL, 0, NULL, 0, NULL, 0);
        protobuf_c_message_pack(resp, p);
        crpc__conn_commit(c, CRPC__HDR_LEN + fixed + len);
      } else {
        crpc__conn_send_status(c, sc->id, CRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory");
      }
    } else {
      crpc__conn_send_status(c, sc->id, code, text);
    }
  }
  srv->ncalls--;
  scall_release(sc);
  if (srv->closing) crpc__server_maybe_free(srv);
}

int crpc_server_call_reply(crpc_server_call *call, const ProtobufCMessage *response) {
  if (!call) return CRPC_EINVAL;
  if (!response) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler replied without a response", NULL);
    return CRPC_EINVAL;
  }
  if (response->descriptor != call->entry->method->output) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler replied with a message of the wrong type",
                 NULL);
    return CRPC_ETYPE;
  }
  scall_finish(call, CRPC_STATUS_OK, NULL, response);
  return 0;
}

int crpc_server_call_fail(crpc_server_call *call, crpc_code code, const char *message) {
  if (!call) return CRPC_EINVAL;
  if (code == CRPC_STATUS_OK) {
    scall_finish(call, CRPC_STATUS_INTERNAL, "handler failed the call with status OK", NULL);
    return CRPC_EINVAL;
  }
  scall_finish(call, code, message ? message : "", NULL);
  return 0;
}

const crpc_method_desc *crpc_server_call_method(const crpc_server_call *call) {
  return call ? call->entry->method : NULL;
}

int crpc_server_call_cancelled(const crpc_server_call *call) { return call ? call->cancelled : 1; }

crpc_server *crpc_server_call_server(const crpc_server_call *call) { return call ? call->srv : NULL; }
