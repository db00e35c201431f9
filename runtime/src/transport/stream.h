/* The libuv stream transport: uv_tcp_t ("tcp") and uv_pipe_t ("unix") behind the transport
 * interface (transport.h). The channel's connect path and the server's accept path make these;
 * the connection sees only the interface. */
#ifndef CRPC_TRANSPORT_STREAM_H
#define CRPC_TRANSPORT_STREAM_H

#include <uv.h>

#include "transport/transport.h"

/* Any libuv stream handle crpc makes: a TCP or Unix socket, connected, listening or accepting. */
typedef union crpc__uv_stream {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} crpc__uv_stream;

enum crpc__stream_kind { CRPC__STREAM_TCP = 1, CRPC__STREAM_UNIX = 2 };

/* A transport around a new, unconnected libuv handle on loop (kind: enum crpc__stream_kind).
 * Returns 0 with *out set, or CRPC_ENOMEM / a negative libuv error. Before it is connected it may
 * be closed (close) but not read or written. */
int crpc__stream_new(uv_loop_t *loop, int kind, crpc__transport **out);
/* The handle, for whoever connects it (uv_tcp_connect, uv_pipe_connect, uv_pipe_open) or accepts
 * into it (uv_accept): a uv_tcp_t or uv_pipe_t as created. Its data field is the transport's:
 * leave it alone. Nothing else may be done with the handle (the transport reads, writes and
 * closes it). */
uv_stream_t *crpc__stream_handle(crpc__transport *t);
/* The handle is connected: sets TCP_NODELAY (TCP: frames are coalesced above, a delayed small
 * write only adds latency) and records the peer's identity. */
void crpc__stream_connected(crpc__transport *t);

#endif
