/* Tunables of channels and servers, set with crpc_channel_set_option() and
 * crpc_server_set_option() before the object is first used (before the first call, before the
 * first listen). One table holds every option, its default, its range and who accepts it. */
#ifndef CRPC_OPTIONS_H
#define CRPC_OPTIONS_H

#include <stdint.h>

#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Who accepts an option: a channel (C), a server (S), or both (CS). */
#define CRPC_OPT_CHANNEL 1
#define CRPC_OPT_SERVER 2

/* X(NAME, default, min, max, accepted-by)
 *
 * MAX_RECV_MESSAGE_SIZE  bytes of one incoming message; a larger one fails that call with
 *                        RESOURCE_EXHAUSTED and is discarded unread (never buffered).
 * MAX_SEND_MESSAGE_SIZE  bytes of one outgoing message; a larger one fails the call locally with
 *                        RESOURCE_EXHAUSTED (client) or is replaced by that status (server).
 * CONNECT_TIMEOUT_MS     a connection attempt (resolve + connect + preface) longer than this fails.
 * BACKOFF_INITIAL_MS     first delay before reconnecting after a failed connection attempt ...
 * BACKOFF_MAX_MS         ... growing 1.6x per consecutive failure up to this, with +-20% jitter.
 * DEFAULT_TIMEOUT_MS     deadline of calls that do not set one (0: none).
 * MAX_CALLS_PER_CONN     calls in progress on one connection; the server refuses more with
 *                        RESOURCE_EXHAUSTED before the handler runs; a client queues no more and
 *                        fails the extra call with RESOURCE_EXHAUSTED.
 * MAX_CONNECTIONS        connections a server holds; one more is accepted and closed at once.
 * MAX_METADATA_SIZE      bytes of a call's metadata (each entry: key + value + 32) in either
 *                        direction; more fails the call with RESOURCE_EXHAUSTED.
 * MAX_NESTING_DEPTH      message nesting levels of an incoming protobuf message; deeper is refused
 *                        before protobuf-c decodes it (whose recursion has no limit): INTERNAL.
 * MAX_DECODE_RATIO       memory that decoding one incoming message (request, stream message or
 *                        response) may take, as a multiple of its size on the wire: what the
 *                        decoded message keeps stays within RATIO x size + 64 KiB, and what
 *                        protobuf-c allocates in all, counting what it frees again before it
 *                        returns, within (RATIO + 32) x size + 128 KiB. Past either the message
 *                        is refused and its call fails with RESOURCE_EXHAUSTED. Ordinary messages
 *                        decode to at most a few times their size; shapes such as thousands of
 *                        empty sub-messages or 2-byte unknown fields take 20x or more.
 * HANDSHAKE_TIMEOUT_MS   a server closes a connection whose preface has not arrived by then.
 * IDLE_TIMEOUT_MS        a server closes (GOAWAY IDLE) a connection with no call in progress and
 *                        nothing received for this long; 0: never.
 * STALL_TIMEOUT_MS       a server closes a connection whose partly received frame has not
 *                        completed in this long (slowloris), or whose peer, with reading paused
 *                        by MAX_WRITE_BUFFER, has taken none of its output for this long.
 * MAX_WRITE_BUFFER       bytes queued for a peer that does not read. Past it a server stops
 *                        reading from that peer (takes no new calls) until the queue drains; a
 *                        channel keeps reading (the responses are what frees the server) and
 *                        fails new calls RESOURCE_EXHAUSTED instead. Either side refuses stream
 *                        writes on that connection with CRPC_EAGAIN, whichever call makes them,
 *                        and runs on_writable once the queue has drained to half of it; a PING
 *                        is not answered past it. A call's final STATUS is never held back, so
 *                        the queue is at most this + one frame + the STATUS of each call in
 *                        progress (docs/guide.md, "Memory per connection").
 * KEEPALIVE_TIME_MS      a channel pings a connection silent for this long; 0: never.
 * KEEPALIVE_TIMEOUT_MS   ... and closes it (its calls fail UNAVAILABLE) without an answer by then.
 * MIN_PING_INTERVAL_MS   a server counts a PING sooner than this after the previous one as a
 *                        strike; at 3 strikes it sends GOAWAY ENHANCE_YOUR_CALM and closes.
 *                        Strikes are forgiven when the server answers real work (an OK status
 *                        or a stream message), not by the client's own frames.
 * LOOPS                  event loops (threads) a private-loop server serves its TCP endpoints
 *                        with: each loop listens on the same port (SO_REUSEPORT) and the kernel
 *                        spreads connections over them; handlers then run on several threads at
 *                        once. Unix-socket endpoints are served by the first loop only.
 * STREAM_WINDOW          bytes of stream messages this side lets a peer send on one call before
 *                        its application has read them (flow control; the protocol starts every
 *                        call at 65536, a larger value is granted at once). A window never
 *                        exceeds 2^31-1 bytes (PROTOCOL.md 6.8): WINDOW frames from a peer that
 *                        would raise one past that end the call with INTERNAL.
 * UNIX_SOCKET_MODE       permission bits (write them in octal: 0660, 0600) of the socket file a
 *                        server's unix:PATH endpoint creates, whatever the process umask; set
 *                        with chmod() after bind() and before listen(), so no client can connect
 *                        while the file still has the umask's mode. 0: the umask decides.
 *                        Abstract sockets (unix:@NAME) have no file and ignore it.
 *
 * An option's number (its place in this list) is part of the ABI: new options go at the end. */
#define CRPC_OPTION_MAP(X)                                                                   \
  X(MAX_RECV_MESSAGE_SIZE, 4194304, 0, 2147483647, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)       \
  X(MAX_SEND_MESSAGE_SIZE, 4194304, 0, 2147483647, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)       \
  X(CONNECT_TIMEOUT_MS, 20000, 1, 86400000, CRPC_OPT_CHANNEL)                                \
  X(BACKOFF_INITIAL_MS, 100, 1, 86400000, CRPC_OPT_CHANNEL)                                  \
  X(BACKOFF_MAX_MS, 5000, 1, 86400000, CRPC_OPT_CHANNEL)                                     \
  X(DEFAULT_TIMEOUT_MS, 0, 0, 86400000, CRPC_OPT_CHANNEL)                                    \
  X(MAX_CALLS_PER_CONN, 4096, 1, 1048576, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)                \
  X(MAX_CONNECTIONS, 10000, 1, 1048576, CRPC_OPT_SERVER)                                    \
  X(MAX_METADATA_SIZE, 8192, 0, 16777216, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)                \
  X(MAX_NESTING_DEPTH, 64, 1, 1024, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)                      \
  X(HANDSHAKE_TIMEOUT_MS, 10000, 1, 86400000, CRPC_OPT_SERVER)                               \
  X(IDLE_TIMEOUT_MS, 300000, 0, 86400000, CRPC_OPT_SERVER)                                   \
  X(STALL_TIMEOUT_MS, 20000, 1, 86400000, CRPC_OPT_SERVER)                                   \
  X(MAX_WRITE_BUFFER, 16777216, 65536, 2147483647, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)       \
  X(KEEPALIVE_TIME_MS, 0, 0, 86400000, CRPC_OPT_CHANNEL)                                     \
  X(KEEPALIVE_TIMEOUT_MS, 20000, 1, 86400000, CRPC_OPT_CHANNEL)                              \
  X(MIN_PING_INTERVAL_MS, 1000, 0, 86400000, CRPC_OPT_SERVER)                               \
  X(STREAM_WINDOW, 65536, 65536, 1073741824, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)            \
  X(LOOPS, 1, 1, 64, CRPC_OPT_SERVER)                                                        \
  X(UNIX_SOCKET_MODE, 0, 0, 0777, CRPC_OPT_SERVER)                                           \
  X(MAX_DECODE_RATIO, 16, 1, 1024, CRPC_OPT_CHANNEL | CRPC_OPT_SERVER)

typedef enum crpc_option {
#define CRPC_OPTION_GEN_(name, def, lo, hi, who) CRPC_OPT_##name,
  CRPC_OPTION_MAP(CRPC_OPTION_GEN_)
#undef CRPC_OPTION_GEN_
  CRPC_OPT_COUNT_
} crpc_option;

/* "MAX_RECV_MESSAGE_SIZE", ...; NULL for a value outside the enum. Thread-safe. */
CRPC_EXTERN const char *crpc_option_name(crpc_option opt);

/* The default value of opt, or -1 for a value outside the enum. Thread-safe. */
CRPC_EXTERN int64_t crpc_option_default(crpc_option opt);

#ifdef __cplusplus
}
#endif
#endif
