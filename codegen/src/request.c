#include "request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

int request_read_all(FILE *in, size_t max_len, uint8_t **data, size_t *len)
{
  size_t cap = 0;
  size_t n = 0;
  uint8_t *buf = NULL;

  for (;;) {
    size_t got;

    if (n == cap) {
      uint8_t *p;

      if (cap >= max_len) {
        free(buf);
        errno = EFBIG;
        return -1;
      }
      cap = cap ? cap * 2 : 65536;
      if (cap > max_len)
        cap = max_len;
      p = realloc(buf, cap);
      if (p == NULL) {
        free(buf);
        errno = ENOMEM;
        return -1;
      }
      buf = p;
    }
    got = fread(buf + n, 1, cap - n, in);
    n += got;
    if (got == 0) {
      if (ferror(in)) {
        free(buf);
        if (errno == 0)
          errno = EIO;
        return -1;
      }
      break;
    }
  }
  *data = buf;
  *len = n;
  return 0;
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return -1;
}

/* Names used in generated text: NULL or not an identifier cannot come from protoc. */
static int check_ident(const char *s, const char *what, const char *file, char *err, size_t n)
{
  if (s == NULL || !names_is_ident(s))
    return fail(err, n, "%s in %s is missing or not an identifier", what, file);
  return 0;
}

/* protobuf itself refuses messages nested this deep (its parser's recursion limit is 100). */
#define MAX_NESTING 100

static int check_message(const gen_message_proto *m, const char *file, char *err, size_t n,
                         int depth)
{
  if (depth > MAX_NESTING)
    return fail(err, n, "messages in %s are nested more than %d deep", file, MAX_NESTING);
  if (check_ident(m->name, "a message name", file, err, n) != 0)
    return -1;
  for (size_t i = 0; i < m->n_nested_type; i++)
    if (check_message(m->nested_type[i], file, err, n, depth + 1) != 0)
      return -1;
  for (size_t i = 0; i < m->n_enum_type; i++)
    if (check_ident(m->enum_type[i]->name, "an enum name", file, err, n) != 0)
      return -1;
  for (size_t i = 0; i < m->n_field; i++)
    if (check_ident(m->field[i]->name, "a field name", file, err, n) != 0)
      return -1;
  for (size_t i = 0; i < m->n_oneof_decl; i++)
    if (check_ident(m->oneof_decl[i]->name, "a oneof name", file, err, n) != 0)
      return -1;
  return 0;
}

static int check_service(const gen_service_proto *s, const char *file, char *err, size_t n)
{
  if (check_ident(s->name, "a service name", file, err, n) != 0)
    return -1;
  for (size_t i = 0; i < s->n_method; i++) {
    const gen_method_proto *m = s->method[i];

    if (check_ident(m->name, "a method name", file, err, n) != 0)
      return -1;
    if (m->input_type == NULL || m->output_type == NULL || m->input_type[0] != '.' ||
        m->output_type[0] != '.' || !names_is_dotted(m->input_type, 0) ||
        !names_is_dotted(m->output_type, 0))
      return fail(err, n, "method %s.%s in %s lacks fully-qualified input/output types", s->name,
                  m->name, file);
  }
  return 0;
}

/* ---- protobuf-c's file options --------------------------------------------------------- */

/* Reads a varint at *pos (< end). Returns 0, or -1 when it is cut short or longer than 10 bytes. */
static int read_varint(const uint8_t **pos, const uint8_t *end, uint64_t *out)
{
  uint64_t v = 0;

  for (unsigned shift = 0; shift < 70; shift += 7) {
    uint8_t b;

    if (*pos >= end)
      return -1;
    b = *(*pos)++;
    v |= (uint64_t)(b & 0x7fu) << shift;
    if ((b & 0x80u) == 0) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

/* Merges one encoded ProtobufCFileOptions into *out. */
static int merge_c_options(const uint8_t *p, const uint8_t *end, gen_c_options *out)
{
  while (p < end) {
    uint64_t key, v;
    uint32_t field;
    unsigned wire;

    if (read_varint(&p, end, &key) != 0 || key > UINT32_MAX)
      return -1;
    field = (uint32_t)(key >> 3);
    wire = (unsigned)(key & 7u);
    if (field == 0)
      return -1;
    switch (wire) {
    case 0: /* varint */
      if (read_varint(&p, end, &v) != 0)
        return -1;
      if (field == 1)
        out->no_generate = v != 0;
      break;
    case 1: /* 64-bit */
    case 5: /* 32-bit */
      if ((size_t)(end - p) < (wire == 1 ? 8u : 4u))
        return -1;
      p += wire == 1 ? 8 : 4;
      break;
    case 2: /* length-delimited */
      if (read_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
        return -1;
      if (field == 6) {
        out->has_c_package = 1;
        out->c_package = (const char *)p;
        out->c_package_len = (size_t)v;
      }
      p += v;
      break;
    default: /* groups and reserved wire types: protoc never writes them here */
      return -1;
    }
    if ((field == 1 && wire != 0) || (field == 6 && wire != 2))
      return -1;
  }
  return 0;
}

int request_c_options(const gen_file_proto *f, gen_c_options *out)
{
  const ProtobufCMessage *opts = f->options != NULL ? &f->options->base : NULL;

  memset(out, 0, sizeof(*out));
  if (opts == NULL)
    return 0;
  for (size_t i = 0; i < opts->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &opts->unknown_fields[i];
    const uint8_t *p = u->data, *end = u->data + u->len;
    uint64_t len;

    if (u->tag != GEN_PB_C_FILE_FIELD)
      continue;
    /* protobuf-c keeps a length-delimited unknown field with its length prefix. */
    if (u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || read_varint(&p, end, &len) != 0 ||
        len != (uint64_t)(end - p) || merge_c_options(p, end, out) != 0)
      return -1;
  }
  return 0;
}

static int check_file(const gen_file_proto *f, char *err, size_t n)
{
  gen_c_options copts;

  if (f->name == NULL || f->name[0] == '\0')
    return fail(err, n, "a proto_file has no name");
  if (request_c_options(f, &copts) != 0)
    return fail(err, n, "the protobuf-c options (pb_c_file) of %s cannot be decoded", f->name);
  if (f->package != NULL && !names_is_dotted(f->package, 1))
    return fail(err, n, "the package of %s is not a dotted identifier", f->name);
  for (size_t i = 0; i < f->n_dependency; i++)
    if (f->dependency[i] == NULL)
      return fail(err, n, "%s has an unnamed dependency", f->name);
  for (size_t i = 0; i < f->n_message_type; i++)
    if (check_message(f->message_type[i], f->name, err, n, 1) != 0)
      return -1;
  for (size_t i = 0; i < f->n_enum_type; i++) {
    const gen_enum_proto *e = f->enum_type[i];

    if (check_ident(e->name, "an enum name", f->name, err, n) != 0)
      return -1;
    for (size_t j = 0; j < e->n_value; j++)
      if (check_ident(e->value[j]->name, "an enum value name", f->name, err, n) != 0)
        return -1;
  }
  for (size_t i = 0; i < f->n_service; i++)
    if (check_service(f->service[i], f->name, err, n) != 0)
      return -1;
  return 0;
}

static int check_request(const gen_request *req, char *err, size_t n)
{
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (check_file(req->proto_file[i], err, n) != 0)
      return -1;
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const char *name = req->file_to_generate[i];

    if (name == NULL || request_find_file(req, name) == NULL)
      return fail(err, n, "file_to_generate \"%s\" is not among the request's proto_file",
                  name != NULL ? name : "(null)");
  }
  return 0;
}

gen_request *request_decode(const uint8_t *data, size_t len, char *err, size_t err_len)
{
  gen_request *req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, data);

  if (req == NULL) {
    fail(err, err_len, "the input is not a valid CodeGeneratorRequest (%zu bytes)", len);
    return NULL;
  }
  if (check_request(req, err, err_len) != 0) {
    request_free(req);
    return NULL;
  }
  return req;
}

void request_free(gen_request *req)
{
  if (req != NULL)
    google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
}

const gen_file_proto *request_find_file(const gen_request *req, const char *name)
{
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (strcmp(req->proto_file[i]->name, name) == 0)
      return req->proto_file[i];
  return NULL;
}

static size_t file_index(const gen_request *req, const gen_file_proto *f)
{
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (req->proto_file[i] == f)
      return i;
  return req->n_proto_file;
}

/* Iterative (a garbage request may chain any number of files) and cycle-safe: a file is taken
 * once, when first seen; slot n_proto_file of `seen` stands for a file outside the request. */
size_t request_closure(const gen_request *req, const gen_file_proto *file, arena *a,
                       const gen_file_proto ***out)
{
  size_t total = req->n_proto_file + 1;
  unsigned char *seen = arena_alloc(a, total);
  const gen_file_proto **files = arena_alloc(a, total * sizeof(*files));
  size_t n = 0;

  if (seen == NULL || files == NULL)
    return (size_t)-1;
  files[n++] = file;
  seen[file_index(req, file)] = 1;
  for (size_t next = 0; next < n; next++) {
    const gen_file_proto *f = files[next];

    for (size_t d = 0; d < f->n_dependency; d++) {
      const gen_file_proto *dep = request_find_file(req, f->dependency[d]);
      size_t idx;

      if (dep == NULL)
        continue;
      idx = file_index(req, dep);
      if (!seen[idx]) {
        seen[idx] = 1;
        files[n++] = dep;
      }
    }
  }
  *out = files;
  return n;
}

/* Matches the dotted path `rest` ("Outer.Inner") against messages and their nested types. */
static const gen_message_proto *find_nested(gen_message_proto *const *msgs, size_t n,
                                            const char *rest)
{
  const char *dot = strchr(rest, '.');
  size_t len = dot != NULL ? (size_t)(dot - rest) : strlen(rest);

  for (size_t i = 0; i < n; i++) {
    const gen_message_proto *m = msgs[i];

    if (strlen(m->name) != len || strncmp(m->name, rest, len) != 0)
      continue;
    if (dot == NULL)
      return m;
    return find_nested(m->nested_type, m->n_nested_type, dot + 1);
  }
  return NULL;
}

const gen_message_proto *request_find_message(const gen_file_proto *const *files, size_t n,
                                              const char *type_name,
                                              const gen_file_proto **file_out)
{
  if (type_name[0] != '.')
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const char *pkg = files[i]->package != NULL ? files[i]->package : "";
    size_t plen = strlen(pkg);
    const char *rest = type_name + 1;
    const gen_message_proto *m;

    if (plen > 0) {
      if (strncmp(rest, pkg, plen) != 0 || rest[plen] != '.')
        continue;
      rest += plen + 1;
    }
    m = find_nested(files[i]->message_type, files[i]->n_message_type, rest);
    if (m != NULL) {
      *file_out = files[i];
      return m;
    }
  }
  return NULL;
}
