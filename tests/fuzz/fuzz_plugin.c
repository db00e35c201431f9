/* Fuzz target: protoc-gen-crpc on arbitrary CodeGeneratorRequest bytes, in process.
 *
 * The plugin's decode + generate path lives in codegen/src/main.c as static functions around
 * main(), which reads stdin. To run exactly that code without a process per input, this file
 * includes main.c with main renamed, and calls what main() calls: request_decode(), generate(),
 * then packs the response as write_response() would (into memory, not stdout). The rest of the
 * plugin (request.c, plan.c, emit_*.c, ...) is linked as a library built from protoc-gen-crpc's
 * own source list.
 *
 * Invariants: no crash, leak or UB; a request that decodes yields a response that packs and
 * unpacks again; every generated file is named <x>.crpc.h / <x>.crpc.c and comes in pairs; a
 * response with an error carries no files. */
#include <stdint.h>

#define main crpc_plugin_main
#include "main.c" /* codegen/src/main.c */
#undef main

#include "fuzz.h"

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static void check_response(const gen_response *res) {
  if (res->error != NULL)
    FUZZ_CHECK(res->n_file == 0);
  FUZZ_CHECK(res->n_file % 2 == 0);
  for (size_t i = 0; i < res->n_file; i++) {
    const gen_response_file *f = res->file[i];
    FUZZ_CHECK(f != NULL && f->name != NULL && f->content != NULL);
    FUZZ_CHECK(ends_with(f->name, i % 2 == 0 ? ".crpc.h" : ".crpc.c"));
  }
  size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(res);
  uint8_t *buf = malloc(len ? len : 1);
  FUZZ_CHECK(buf != NULL);
  FUZZ_CHECK(google__protobuf__compiler__code_generator_response__pack(res, buf) == len);
  gen_response *back =
      google__protobuf__compiler__code_generator_response__unpack(NULL, len, buf);
  FUZZ_CHECK(back != NULL && back->n_file == res->n_file);
  google__protobuf__compiler__code_generator_response__free_unpacked(back, NULL);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char msg[512];
  gen_request *req = request_decode(data, size, msg, sizeof msg);
  if (req == NULL) {
    FUZZ_CHECK(memchr(msg, '\0', sizeof msg) != NULL && msg[0] != '\0');
    return 0;
  }
  gen_response res = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  strbuf err;
  arena a = {NULL};
  strbuf_init(&err);
  if (generate(&a, req, &res, &err) == 0)
    check_response(&res);
  else
    FUZZ_CHECK(err.len > 0);
  strbuf_free(&err);
  arena_free(&a);
  request_free(req);
  return 0;
}

void fuzz_teardown(void) {}

