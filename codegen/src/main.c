/* protoc-gen-crpc: protoc plugin. Reads a CodeGeneratorRequest on stdin, writes a
 * CodeGeneratorResponse on stdout with <name>.crpc.h and <name>.crpc.c for every file to
 * generate (always both, also for files without services), except, as protoc-c, for a file that
 * sets option (pb_c_file).no_generate = true (nothing).
 *
 * Exit status: 0 when a response was written, including one whose `error` reports a problem of
 * the .proto files; 1 when the request could not be read or decoded, or memory ran out (the
 * reason goes to stderr, nothing to stdout). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "emit.h"
#include "plan.h"
#include "request.h"
#include "strbuf.h"

typedef Google__Protobuf__Compiler__CodeGeneratorResponse gen_response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File gen_response_file;

/* A request larger than this is refused (protoc's own limit for messages is 2 GiB; real requests
 * are far smaller). */
#define MAX_REQUEST_BYTES ((size_t)256 << 20)

/* Adds one output file; name and content are arena-owned or strbuf-detached (copied here). */
static int add_file(arena *a, gen_response *res, const char *name, const strbuf *content)
{
  gen_response_file *f = arena_alloc(a, sizeof(*f));
  char *text = arena_strndup(a, strbuf_str(content), content->len);

  if (f == NULL || text == NULL)
    return -1;
  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = (char *)name;
  f->content = text;
  res->file[res->n_file++] = f;
  return 0;
}

/* Generates one file's pair into res. Returns 0, 1 (a .proto problem: res->error is set) or -1
 * (internal: err is set). */
static int generate_file(arena *a, const gen_request *req, const char *name, gen_response *res,
                         strbuf *err)
{
  gen_file plan;
  strbuf header, source;
  enum plan_result pr = plan_file(a, req, request_find_file(req, name), &plan, err);
  int rc = -1;

  strbuf_init(&header);
  strbuf_init(&source);
  if (pr == PLAN_PROTO_ERROR) {
    res->error = arena_strdup(a, strbuf_str(err));
    rc = res->error != NULL ? 1 : -1;
  } else if (pr == PLAN_OK) {
    if (emit_header(&plan, &header) == 0 && emit_source(&plan, &source) == 0 &&
        add_file(a, res, plan.header_name, &header) == 0 &&
        add_file(a, res, plan.source_name, &source) == 0)
      rc = 0;
    else
      strbuf_append(err, "out of memory");
  }
  strbuf_free(&header);
  strbuf_free(&source);
  plan_release(&plan);
  return rc;
}

/* Builds the response. Returns 0 (possibly with res->error set) or -1 with err set. */
static int generate(arena *a, const gen_request *req, gen_response *res, strbuf *err)
{
  res->has_supported_features = 1;
  res->supported_features =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  if (req->n_file_to_generate > 0) {
    if (req->n_file_to_generate > ((size_t)-1) / (2 * sizeof(*res->file)))
      return strbuf_append(err, "too many files"), -1;
    res->file = arena_alloc(a, 2 * req->n_file_to_generate * sizeof(*res->file));
    if (res->file == NULL)
      return strbuf_append(err, "out of memory"), -1;
  }
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    gen_c_options copts;
    int rc;

    /* Like protoc-c, nothing for a file with option (pb_c_file).no_generate: a .crpc pair would
     * include a .pb-c.h that is never written. */
    if (request_c_options(request_find_file(req, req->file_to_generate[i]), &copts) == 0 &&
        copts.no_generate)
      continue;
    rc = generate_file(a, req, req->file_to_generate[i], res, err);

    if (rc < 0)
      return -1;
    if (rc > 0) { /* protoc reports the error and ignores the files */
      res->n_file = 0;
      return 0;
    }
  }
  return 0;
}

static int write_response(const gen_response *res)
{
  size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(res);
  uint8_t *buf = malloc(len ? len : 1);
  int rc = -1;

  if (buf == NULL)
    return -1;
  google__protobuf__compiler__code_generator_response__pack(res, buf);
  if (fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0)
    rc = 0;
  free(buf);
  return rc;
}

int main(int argc, char **argv)
{
  gen_response res = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  gen_request *req;
  uint8_t *data = NULL;
  size_t len = 0;
  char msg[512];
  strbuf err;
  arena a = {NULL};
  int status = 1;

  if (argc > 1) {
    fprintf(stderr, "%s: a protoc plugin; run it through protoc:\n"
                    "  protoc --plugin=protoc-gen-crpc=%s --crpc_out=DIR file.proto\n",
            argv[0], argv[0]);
    return 1;
  }
  if (request_read_all(stdin, MAX_REQUEST_BYTES, &data, &len) != 0) {
    fprintf(stderr, "protoc-gen-crpc: cannot read the request from stdin: %s\n",
            strerror(errno));
    return 1;
  }
  req = request_decode(data, len, msg, sizeof(msg));
  free(data);
  if (req == NULL) {
    fprintf(stderr, "protoc-gen-crpc: %s\n", msg);
    return 1;
  }
  strbuf_init(&err);
  if (generate(&a, req, &res, &err) != 0)
    fprintf(stderr, "protoc-gen-crpc: %s\n", strbuf_str(&err));
  else if (write_response(&res) != 0)
    fprintf(stderr, "protoc-gen-crpc: cannot write the response to stdout\n");
  else
    status = 0;
  strbuf_free(&err);
  arena_free(&a);
  request_free(req);
  return status;
}
