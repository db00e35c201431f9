/* Nesting-depth check: see pbdepth.h for the contract.
 *
 * The walk keeps one explicit stack of open messages (descriptor + offset where its bytes end);
 * entering a sub-message pushes, reaching its end pops. Every step consumes at least one key byte
 * and every pop matches an earlier push, so the time is O(len) and the stack never holds more
 * than max_depth entries. Every length read from the bytes is compared with what is left of the
 * enclosing message (a subtraction that cannot wrap, since pos <= end always) before it is added,
 * so no sum can overflow, whatever the varint says. */
#include "wire/pbdepth.h"

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Stack entries kept in the caller's frame for limits up to the default. */
#define SMALL_STACK CRPC__PB_DEFAULT_MAX_DEPTH
#define VARINT_MAX_BYTES 10

/* One open message: its type and the offset just past its last byte. */
typedef struct level {
  const ProtobufCMessageDescriptor *desc;
  size_t end;
} level;

/* stack[0] is the top-level message, stack[depth - 1] the innermost open one. */
typedef struct walk {
  const uint8_t *data;
  size_t pos;
  level *stack;
  unsigned depth;
  unsigned max_depth;
} walk;

static size_t cur_end(const walk *w) { return w->stack[w->depth - 1].end; }

/* Reads a varint that must end by `end` and fit in 64 bits: 0 or CRPC__PB_MALFORMED. */
static int read_varint(walk *w, size_t end, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned i = 0; i < VARINT_MAX_BYTES; i++) {
    if (w->pos == end)
      return CRPC__PB_MALFORMED;
    uint8_t b = w->data[w->pos++];
    /* The tenth byte carries bit 63 only: more is an overflow, a continuation an 11th byte. */
    if (i == VARINT_MAX_BYTES - 1 && b > 1)
      return CRPC__PB_MALFORMED;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *out = v;
      return CRPC__PB_OK;
    }
  }
  return CRPC__PB_MALFORMED; /* not reached: the tenth byte either ends the varint or fails */
}

/* Skips n bytes of the current message. */
static int skip(walk *w, uint64_t n) {
  if (n > cur_end(w) - w->pos)
    return CRPC__PB_MALFORMED;
  w->pos += (size_t)n;
  return CRPC__PB_OK;
}

/* The n-byte value of length-delimited field `number`, at w->pos: entered when the current
 * message declares that field a message, skipped otherwise. */
static int length_delimited(walk *w, uint32_t number, uint64_t n) {
  const level *cur = &w->stack[w->depth - 1];
  if (n > cur->end - w->pos)
    return CRPC__PB_MALFORMED;
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(cur->desc, number);
  if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE)
    return skip(w, n);
  if (w->depth == w->max_depth)
    return CRPC__PB_TOO_DEEP;
  w->stack[w->depth].desc = f->descriptor;
  w->stack[w->depth].end = w->pos + (size_t)n;
  w->depth++;
  return CRPC__PB_OK;
}

/* One field of the current message: its key, then its value skipped or entered. */
static int field(walk *w) {
  uint64_t key, v;
  int rc = read_varint(w, cur_end(w), &key);
  if (rc != CRPC__PB_OK)
    return rc;
  if (key > UINT32_MAX || (key >> 3) == 0)
    return CRPC__PB_MALFORMED;
  switch (key & 7) {
  case PROTOBUF_C_WIRE_TYPE_VARINT:
    return read_varint(w, cur_end(w), &v);
  case PROTOBUF_C_WIRE_TYPE_64BIT:
    return skip(w, 8);
  case PROTOBUF_C_WIRE_TYPE_32BIT:
    return skip(w, 4);
  case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
    rc = read_varint(w, cur_end(w), &v);
    return rc != CRPC__PB_OK ? rc : length_delimited(w, (uint32_t)(key >> 3), v);
  default: /* 3, 4: groups (protobuf-c has none); 6, 7: undefined */
    return CRPC__PB_MALFORMED;
  }
}

/* Walks everything, closing each message at its end, until the top-level one ends. */
static int run(walk *w, level *stack, const ProtobufCMessageDescriptor *desc, size_t len) {
  w->stack = stack;
  stack[0].desc = desc;
  stack[0].end = len;
  for (;;) {
    while (w->pos == cur_end(w)) {
      if (w->depth == 1)
        return CRPC__PB_OK;
      w->depth--;
    }
    int rc = field(w);
    if (rc != CRPC__PB_OK)
      return rc;
  }
}

/* Kept out of line so that only limits above SMALL_STACK pay for the big array. */
static NOINLINE int run_large(walk *w, const ProtobufCMessageDescriptor *desc, size_t len) {
  level stack[CRPC__PB_MAX_DEPTH_CAP];
  return run(w, stack, desc, len);
}

/* A message type without message-typed fields nests one level whatever the bytes say: the walk
 * (about as costly as the decode on small messages) is not needed. Malformed bytes are still
 * refused by protobuf-c itself. */
static int flat(const ProtobufCMessageDescriptor *desc) {
  for (unsigned i = 0; i < desc->n_fields; i++)
    if (desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) return 0;
  return 1;
}

int crpc__pb_depth_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         unsigned max_depth) {
  if (flat(desc)) return CRPC__PB_OK;
  walk w = {.data = data, .pos = 0, .stack = NULL, .depth = 1, .max_depth = max_depth};
  if (max_depth == 0)
    w.max_depth = CRPC__PB_DEFAULT_MAX_DEPTH;
  else if (max_depth > CRPC__PB_MAX_DEPTH_CAP)
    w.max_depth = CRPC__PB_MAX_DEPTH_CAP;
  if (w.max_depth > SMALL_STACK)
    return run_large(&w, desc, len);
  level stack[SMALL_STACK];
  return run(&w, stack, desc, len);
}
