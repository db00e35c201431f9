/* Server calls: one incoming RPC from dispatch to the handler's single finish. */
#ifndef CRPC_SERVER_CALL_H
#define CRPC_SERVER_CALL_H

#include <stdint.h>

#include "arena.h"
#include "crpc/server.h"
#include "dlheap.h"
#include "list.h"
#include "outbuf.h"
#include "registry.h"

typedef struct crpc__conn crpc__conn;

struct crpc_server_call {
  crpc_server *srv;
  crpc__conn *conn;          /* NULL once the client is gone or cancelled */
  uint32_t id;
  const crpc__reg_entry *entry;
  ProtobufCMessage *request; /* in the arena */
  crpc_metadata *md;         /* request metadata, in the arena */
  size_t md_count;
  crpc__outbuf trailers;     /* encoded metadata block to send with the status */
  size_t trailers_counted;
  crpc__dl_node dl;          /* deadline */
  crpc_server_cancel_cb on_cancel;
  void *cancel_ud;
  int cancelled;
  crpc__list link;           /* srv->calls, or the pool */
  crpc__arena arena;
};

/* The connection forgets the call (client cancelled, or connection gone): the handler still owns
 * it and must finish it; nothing will be sent. */
void crpc__server_call_detach(void *call);
/* Fires the deadlines that have passed and re-arms the server's deadline timer. */
void crpc__server_expire(crpc_server *srv);

#endif
