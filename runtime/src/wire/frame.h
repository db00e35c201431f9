/* Frame codec: the wire format of runtime/PROTOCOL.md, as pure functions and a streaming decoder.
 * No I/O, no libuv, no global state: bytes in -> frames out, frame fields -> bytes.
 *
 * Every integer on the wire is big-endian and is read and written byte by byte (crpc__be*), never
 * by casting a struct onto a buffer. Every length read from the wire is checked against the bytes
 * actually present and against the configured limit before it is used. */
#ifndef CRPC_FRAME_H
#define CRPC_FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Connection preface, sent first by both peers: "CRPC" 0x0D 0x0A MAJOR MINOR. */
#define CRPC__PREFACE_LEN 8
#define CRPC__PROTO_MAJOR 1
#define CRPC__PROTO_MINOR 0

/* Frame header: length u32 | type u8 | flags u8 | reserved u16 (zero) | call id u32. */
#define CRPC__HDR_LEN 12

enum crpc__ftype {
  CRPC__F_CALL = 0x01,      /* caller -> callee: start a call */
  CRPC__F_MESSAGE = 0x02,   /* one message of a call, either direction */
  CRPC__F_HALF_CLOSE = 0x03,/* sender sends no more messages on this call */
  CRPC__F_STATUS = 0x04,    /* callee -> caller: the call's final status (+ last message) */
  CRPC__F_CANCEL = 0x05,    /* caller -> callee: abandon the call */
  CRPC__F_PING = 0x06,      /* connection: liveness probe; ACK flag on the answer */
  CRPC__F_GOAWAY = 0x07,    /* connection: last call id served, error code, text */
  CRPC__F_WINDOW = 0x08,    /* flow-control credit (streams); call id 0: connection */
  CRPC__F_HEADERS = 0x09    /* callee -> caller: initial metadata of a call */
};

enum crpc__fflags {
  CRPC__FL_END = 0x01,      /* CALL, MESSAGE: the sender's last message on this call */
  CRPC__FL_MESSAGE = 0x02,  /* CALL, STATUS: a message follows the fixed fields */
  CRPC__FL_ACK = 0x01       /* PING: this is the answer */
};

/* GOAWAY error codes. */
enum crpc__goaway_code {
  CRPC__GOAWAY_NO_ERROR = 0,       /* graceful shutdown */
  CRPC__GOAWAY_PROTOCOL_ERROR = 1, /* the peer broke PROTOCOL.md */
  CRPC__GOAWAY_INTERNAL_ERROR = 2,
  CRPC__GOAWAY_VERSION = 3,        /* unsupported protocol major version */
  CRPC__GOAWAY_ENHANCE_YOUR_CALM = 4, /* too many pings or resets */
  CRPC__GOAWAY_IDLE = 5            /* idle or handshake timeout */
};

/* Decoder and payload-parser results (all negative; 0 is success). */
enum crpc__fresult {
  CRPC__FR_OK = 0,
  CRPC__FR_BADMAGIC = -1,   /* preface magic wrong: not a crpc peer */
  CRPC__FR_VERSION = -2,    /* preface major version unsupported */
  CRPC__FR_PROTO = -3,      /* malformed header or payload */
  CRPC__FR_NOMEM = -4
};

/* Fixed upper bounds that do not depend on configuration. */
#define CRPC__MAX_METHOD_LEN 1024       /* bytes of a method name in CALL */
#define CRPC__MAX_CONTROL_PAYLOAD 16384 /* PING, CANCEL, HALF_CLOSE, GOAWAY, WINDOW, unknown types */

/* One decoded frame. `payload` points at `length` bytes valid during the callback only; it is
 * NULL when the frame was longer than the decoder's limit (`oversized` is then 1 and the payload
 * is being discarded unread). */
typedef struct crpc__frame {
  uint32_t length;
  uint8_t type;
  uint8_t flags;
  uint32_t call_id;
  const uint8_t *payload;
  int oversized;
  /* A frame received split (crpc__decoder_split): payload holds its first head_len bytes and
   * tail the other length - head_len (malloc'd; freed by the decoder after the callback unless
   * taken with crpc__decoder_take_tail). NULL for every other frame. */
  uint8_t *tail;
  uint32_t head_len;
} crpc__frame;

/* ---- Integers --------------------------------------------------------------------------------*/
static inline void crpc__be16_put(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void crpc__be32_put(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline uint16_t crpc__be16_get(const uint8_t *p) {
  return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t crpc__be32_get(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- Preface and header ------------------------------------------------------------------------*/
/* Writes our preface (CRPC__PREFACE_LEN bytes). */
void crpc__preface_encode(uint8_t *out);
/* Checks a peer's preface: 0, CRPC__FR_BADMAGIC or CRPC__FR_VERSION. *minor gets its minor. */
int crpc__preface_decode(const uint8_t *in, uint8_t *minor);

/* Writes a CRPC__HDR_LEN-byte header. */
void crpc__hdr_encode(uint8_t *out, uint8_t type, uint8_t flags, uint32_t call_id,
                      uint32_t length);
/* Reads a header into f (payload NULL, oversized 0): 0, or CRPC__FR_PROTO (reserved bits set). */
int crpc__hdr_decode(const uint8_t *in, crpc__frame *f);

/* ---- Payloads ----------------------------------------------------------------------------------
 * Encoders write into a buffer the caller sized with the matching _size() function and return the
 * end of what they wrote. Decoders parse f->payload (f->length bytes), point into it (nothing is
 * copied, strings are NOT NUL-terminated), and return 0 or CRPC__FR_PROTO. */

/* CALL: u16 method_len | method | u32 timeout_ms | u32 metadata_len | metadata | [message] */
typedef struct crpc__call_hdr {
  const char *method;
  uint16_t method_len;
  uint32_t timeout_ms;        /* 0: no deadline */
  const uint8_t *metadata;    /* metadata block (see crpc__md_*) */
  uint32_t metadata_len;
  const uint8_t *message;     /* when f->flags has CRPC__FL_MESSAGE, else NULL */
  uint32_t message_len;
} crpc__call_hdr;
size_t crpc__call_fixed_size(size_t method_len, size_t metadata_len);
uint8_t *crpc__call_fixed_encode(uint8_t *p, const char *method, uint16_t method_len,
                                 uint32_t timeout_ms, const uint8_t *metadata,
                                 uint32_t metadata_len);
int crpc__call_decode(const crpc__frame *f, crpc__call_hdr *out);

/* STATUS: u32 code | u32 text_len | text | u32 metadata_len | metadata | u32 details_len | details
 *         | [message] */
typedef struct crpc__status_hdr {
  uint32_t code;
  const char *text;
  uint32_t text_len;
  const uint8_t *metadata;
  uint32_t metadata_len;
  const uint8_t *details;
  uint32_t details_len;
  const uint8_t *message;     /* when f->flags has CRPC__FL_MESSAGE, else NULL */
  uint32_t message_len;
} crpc__status_hdr;
size_t crpc__status_fixed_size(size_t text_len, size_t metadata_len, size_t details_len);
uint8_t *crpc__status_fixed_encode(uint8_t *p, uint32_t code, const char *text,
                                   uint32_t text_len, const uint8_t *metadata,
                                   uint32_t metadata_len, const uint8_t *details,
                                   uint32_t details_len);
/* Of a split frame (f->tail set) only the head is decoded: message/message_len are then the part
 * of the message in the head, and the message goes on in f->tail. */
int crpc__status_decode(const crpc__frame *f, crpc__status_hdr *out);

/* GOAWAY: u32 last_call_id | u32 code | u32 text_len | text */
typedef struct crpc__goaway {
  uint32_t last_call_id;
  uint32_t code;
  const char *text;
  uint32_t text_len;
} crpc__goaway;
size_t crpc__goaway_size(size_t text_len);
uint8_t *crpc__goaway_encode(uint8_t *p, uint32_t last_call_id, uint32_t code, const char *text,
                             uint32_t text_len);
int crpc__goaway_decode(const crpc__frame *f, crpc__goaway *out);

/* PING: exactly 8 opaque bytes. WINDOW: u32 increment (> 0). CANCEL, HALF_CLOSE: empty. */
#define CRPC__PING_LEN 8
int crpc__window_decode(const crpc__frame *f, uint32_t *increment);

/* Metadata block: entries of u16 key_len | key | u32 value_len | value. Keys: 1..255 bytes of
 * [a-z0-9_.-]; values of keys ending in "-bin" are any bytes, others printable ASCII 0x20-0x7E.
 * crpc__md_next() walks a block: *pos starts at 0; returns 1 with an entry, 0 at the end,
 * CRPC__FR_PROTO when malformed. */
typedef struct crpc__md_entry {
  const char *key;
  uint16_t key_len;
  const uint8_t *value;
  uint32_t value_len;
} crpc__md_entry;
int crpc__md_next(const uint8_t *block, uint32_t len, uint32_t *pos, crpc__md_entry *out);
size_t crpc__md_entry_size(size_t key_len, size_t value_len);
uint8_t *crpc__md_entry_encode(uint8_t *p, const char *key, uint16_t key_len,
                               const uint8_t *value, uint32_t value_len);

/* ---- Streaming decoder -----------------------------------------------------------------------
 * Feed it bytes as they arrive, in pieces of any size; it calls back once per complete frame.
 * Frames that lie whole in the fed bytes are delivered straight from them (no copy); only a frame
 * split across feeds is assembled in the decoder's own buffer, which never grows past
 * CRPC__HDR_LEN + the frame type's limit (max_payload, or CRPC__MAX_CONTROL_PAYLOAD for control
 * frames), and grows with the bytes actually received, not with the declared length. The one
 * exception is a pause: the unread rest of the paused feed (and anything fed while paused) is
 * kept whole, so it is bounded by what the owner feeds, not by the peer. A frame declaring more than max_payload bytes is delivered
 * header-only (oversized = 1) as soon as its header is complete, and its payload is then skipped
 * as it arrives, never stored. CALL, MESSAGE and STATUS frames are bounded by max_payload; all
 * other types by CRPC__MAX_CONTROL_PAYLOAD. */

/* Return 0 to go on, CRPC__DEC_PAUSE to stop after this frame keeping the unread bytes (resume
 * with crpc__decoder_feed(d, NULL, 0, ...)), or a negative value to stop and fail. */
#define CRPC__DEC_PAUSE 1
typedef int (*crpc__frame_cb)(void *user_data, const crpc__frame *f);

/* What the split receive path did, counted by every decoder that points here: tests point a
 * channel's connections at one (crpc__io_ctx.split_stats) to see which path a response took, and
 * read it from any thread (relaxed atomics; the path runs for frames of 64 KiB and more only).
 * Unlike a linker --wrap of the two functions, this sees calls inlined by LTO as well. */
typedef struct crpc__split_stats {
  atomic_ulong splits;          /* frames split where a large value begins */
  atomic_ulong tails_lent;      /* split tails handed to a message as a field's own block */
  _Atomic(uintptr_t) last_tail; /* the last of those blocks */
} crpc__split_stats;

typedef struct crpc__decoder {
  uint32_t max_payload;
  crpc__split_stats *stats; /* NULL: not counted */
  int want_preface;       /* 1 until the peer's preface has been read */
  uint8_t peer_minor;
  int paused;
  uint8_t *buf;           /* pending bytes: partial preface/frame, or unread bytes after a pause */
  size_t len, cap;
  uint64_t skip;          /* payload bytes of an oversized frame still to discard */
  int taken;              /* the buffer was handed away inside a callback (crpc__decoder_take) */
  /* Split frame under way: its bytes from tail_at (header included) on go to tail. */
  uint8_t *tail;
  size_t tail_at, tail_len, tail_cap;
  int tail_taken;
} crpc__decoder;

void crpc__decoder_init(crpc__decoder *d, uint32_t max_payload, int want_preface);
/* Frees the buffer. The decoder may be initialised again afterwards. */
void crpc__decoder_free(crpc__decoder *d);
/* Returns 0 (all fed bytes consumed or kept), CRPC__DEC_PAUSE (a callback paused), a negative
 * crpc__fresult, or the callback's negative value. After a negative result the decoder must not be
 * fed again. */
int crpc__decoder_feed(crpc__decoder *d, const uint8_t *data, size_t len, crpc__frame_cb cb,
                       void *user_data);
/* Direct reads for large frames: where the next bytes of a partly received frame can be read to
 * straight away, saving the copy through the caller's buffer. Returns the place and *n (> 0), or
 * NULL when no frame is partly received, fewer than `min` of its bytes are missing, or the
 * decoder is paused, skipping or awaiting the preface. The space offered grows with what has
 * arrived (at most doubling), so a peer that declares a large frame and sends little still
 * costs little memory. */
uint8_t *crpc__decoder_space(crpc__decoder *d, size_t min, size_t *n);
/* While a split frame is under way (crpc__decoder_split) both offer room in its tail whatever
 * `min`, up to the frame's end.
 * As crpc__decoder_space(), when the owner knows `ready` bytes are waiting to be read (FIONREAD):
 * the space offered may then grow at once to hold them (they have arrived, so the peer has paid
 * for them), which saves the copies of doubling step by step. */
uint8_t *crpc__decoder_space_ready(crpc__decoder *d, size_t min, size_t ready, size_t *n);
/* Bytes still missing from a partly received frame (0 when none is under way). */
size_t crpc__decoder_missing(const crpc__decoder *d);
/* From inside the frame callback, for a frame that was assembled in the decoder's own buffer and
 * is the only thing there: hands that buffer (malloc'd; the frame's header at its start, so
 * f->payload points into it) to the caller, who frees it with free(). The decoder starts a new
 * buffer for the next frame. Returns NULL, keeping the buffer, for any other frame. */
uint8_t *crpc__decoder_take(crpc__decoder *d, const crpc__frame *f);
/* For a frame partly received, of which at least `at` bytes (header included, at >= the header)
 * are in hand: its bytes from `at` on will be kept in a separate malloc'd block, delivered as
 * f->tail, so that the owner can give that block away whole (a large bytes field's value that
 * starts at `at` becomes the field's own allocation). The block grows with the bytes received,
 * like the decoder's buffer. 0, or -1 (nothing changed) when the frame is not in that state or
 * out of memory. */
int crpc__decoder_split(crpc__decoder *d, size_t at);
/* From inside the frame callback of a split frame: the tail is the caller's (free() it). Returns
 * f->tail, or NULL when f is not the split frame being delivered. */
uint8_t *crpc__decoder_take_tail(crpc__decoder *d, const crpc__frame *f);
/* k bytes were read into the space crpc__decoder_space() offered: delivers the frame once it is
 * complete. Returns as crpc__decoder_feed(). */
int crpc__decoder_commit(crpc__decoder *d, size_t k, crpc__frame_cb cb, void *user_data);

/* Drops the pending buffer when it is empty (memory of an idle connection stays near zero). */
void crpc__decoder_trim(crpc__decoder *d);

#endif
