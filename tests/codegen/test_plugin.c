/* protoc-gen-crpc as protoc runs it: a CodeGeneratorRequest on stdin, a CodeGeneratorResponse on
 * stdout. Requests are built from descriptor sets (protoc --descriptor_set_out --include_imports)
 * of the test protos; the plugin runs as a child process (the in-tree build, or $CRPC_PLUGIN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/wait.h>
#include <unistd.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

typedef struct run_result {
  int exit_code; /* -1: killed by a signal */
  uint8_t *out;
  size_t out_len;
  char *err;
} run_result;

static uint8_t *slurp(FILE *f, size_t *len)
{
  long n;
  uint8_t *buf;

  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = calloc(1, (size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  *len = (size_t)n;
  return buf;
}

static run_result run_plugin(const uint8_t *input, size_t len, const char *arg)
{
  const char *plugin = getenv("CRPC_PLUGIN") != NULL ? getenv("CRPC_PLUGIN") : PLUGIN_PATH;
  FILE *in = tmpfile(), *out = tmpfile(), *err = tmpfile();
  run_result r = {0};
  size_t err_len;
  int status;
  pid_t pid;

  assert_non_null(plugin);
  assert_true(in != NULL && out != NULL && err != NULL);
  assert_int_equal(fwrite(input, 1, len, in), len);
  fflush(in);
  rewind(in);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fileno(in), 0);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    execl(plugin, plugin, arg, (char *)NULL);
    _exit(127);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out, &r.out_len);
  r.err = (char *)slurp(err, &err_len);
  fclose(in);
  fclose(out);
  fclose(err);
  return r;
}

static void run_free(run_result *r)
{
  free(r->out);
  free(r->err);
}

/* A request for `file` from the descriptor set SETS_DIR/<set>.pb. Packed; free() it. */
static uint8_t *make_request(const char *set, const char *file, size_t *len)
{
  Google__Protobuf__Compiler__CodeGeneratorRequest req =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_REQUEST__INIT;
  Google__Protobuf__FileDescriptorSet *fds;
  char path[1024];
  uint8_t *raw, *packed;
  size_t raw_len;
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s.pb", SETS_DIR, set);
  f = fopen(path, "rb");
  assert_non_null(f);
  raw = slurp(f, &raw_len);
  fclose(f);
  fds = google__protobuf__file_descriptor_set__unpack(NULL, raw_len, raw);
  assert_non_null(fds);
  req.n_file_to_generate = 1;
  req.file_to_generate = (char **)&file;
  req.n_proto_file = fds->n_file;
  req.proto_file = fds->file;
  *len = google__protobuf__compiler__code_generator_request__get_packed_size(&req);
  packed = malloc(*len ? *len : 1);
  assert_non_null(packed);
  google__protobuf__compiler__code_generator_request__pack(&req, packed);
  google__protobuf__file_descriptor_set__free_unpacked(fds, NULL);
  free(raw);
  return packed;
}

static Google__Protobuf__Compiler__CodeGeneratorResponse *run_request(const char *set,
                                                                      const char *file)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res;
  size_t len;
  uint8_t *req = make_request(set, file, &len);
  run_result r = run_plugin(req, len, NULL);

  assert_int_equal(r.exit_code, 0);
  assert_string_equal(r.err, "");
  res = google__protobuf__compiler__code_generator_response__unpack(NULL, r.out_len, r.out);
  assert_non_null(res);
  assert_true(res->has_supported_features);
  assert_int_equal(
      res->supported_features,
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL);
  run_free(&r);
  free(req);
  return res;
}

static void expect_internal_error(const uint8_t *input, size_t len, const char *arg,
                                  const char *needle)
{
  run_result r = run_plugin(input, len, arg);

  assert_true(r.exit_code != 0);
  assert_int_equal(r.out_len, 0);
  assert_non_null(strstr(r.err, "protoc-gen-crpc"));
  if (needle != NULL)
    assert_non_null(strstr(r.err, needle));
  run_free(&r);
}

static void garbage_input(void **state)
{
  static const uint8_t garbage[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01 not protobuf";
  size_t len;
  uint8_t *req = make_request("good", "deep/dotted.proto", &len);

  (void)state;
  expect_internal_error(garbage, sizeof(garbage) - 1, NULL, "not a valid CodeGeneratorRequest");
  expect_internal_error(req, len / 2, NULL, NULL); /* truncated */
  expect_internal_error(req, len, "--help", NULL); /* not run by protoc */
  free(req);
}

static void file_not_in_request(void **state)
{
  size_t len;
  uint8_t *req = make_request("good", "missing.proto", &len);

  (void)state;
  expect_internal_error(req, len, NULL, "missing.proto");
  free(req);
}

static void empty_request(void **state)
{
  run_result r = run_plugin((const uint8_t *)"", 0, NULL);
  Google__Protobuf__Compiler__CodeGeneratorResponse *res;

  (void)state;
  assert_int_equal(r.exit_code, 0);
  res = google__protobuf__compiler__code_generator_response__unpack(NULL, r.out_len, r.out);
  assert_non_null(res);
  assert_int_equal(res->n_file, 0);
  assert_null(res->error);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
  run_free(&r);
}

static void colliding_methods(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res = run_request("collide", "collide.proto");

  (void)state;
  assert_non_null(res->error);
  assert_non_null(strstr(res->error, "collide.proto"));
  assert_non_null(strstr(res->error, "cases.Clash"));
  assert_non_null(strstr(res->error, "sayHello"));
  assert_non_null(strstr(res->error, "SayHello"));
  assert_int_equal(res->n_file, 0);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);

  res = run_request("keyword", "keyword.proto");
  assert_non_null(res->error);
  assert_non_null(strstr(res->error, "cases.Kw"));
  assert_non_null(strstr(res->error, "Return"));
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

static const char *file_content(const Google__Protobuf__Compiler__CodeGeneratorResponse *res,
                                const char *name)
{
  for (size_t i = 0; i < res->n_file; i++)
    if (strcmp(res->file[i]->name, name) == 0)
      return res->file[i]->content;
  fail_msg("no %s in the response", name);
  return NULL;
}

/* The lines of generated comments (those starting, after indentation, with slash-star or " *")
 * longer than 100 columns. */
static int wide_comment_lines(const char *text)
{
  int wide = 0;

  while (*text != '\0') {
    const char *eol = strchr(text, '\n');
    size_t len = eol != NULL ? (size_t)(eol - text) : strlen(text);
    size_t i = 0;

    while (i < len && text[i] == ' ')
      i++;
    if (len > 100 && i < len && (text[i] == '*' || (text[i] == '/' && text[i + 1] == '*')))
      wide++;
    text += len + (eol != NULL);
  }
  return wide;
}

static void generates_pair(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res =
      run_request("good", "deep/dotted.proto");
  const char *h, *c;

  (void)state;
  assert_null(res->error);
  assert_int_equal(res->n_file, 2);
  h = file_content(res, "deep/dotted.crpc.h");
  c = file_content(res, "deep/dotted.crpc.c");
  assert_non_null(strstr(h, "deep/dotted.proto"));
  assert_non_null(strstr(h, "#include <crpc/crpc.h>"));
  assert_non_null(strstr(h, "#include \"deep/dotted.pb-c.h\""));
  assert_non_null(strstr(h, "CRPC_GENERATED_ABI != 1\n#error"));
  assert_non_null(strstr(h, "#ifndef CRPC_GENERATED_deep_2fdotted_2eproto_CRPC_H"));
  assert_non_null(strstr(h, "extern const crpc_service_desc a__b__c__d__first__crpc_service;"));
  assert_non_null(strstr(c, "#include \"deep/dotted.crpc.h\""));
  assert_non_null(strstr(c, "#include <crpc/gen.h>"));
  /* The tables name their fields. */
  assert_non_null(strstr(c, "  .abi = CRPC_GENERATED_ABI,\n  .name = \"First\",\n"));
  assert_non_null(strstr(c, "    .name = \"Lookup\",\n    .full_name = \"a.b.c.d.First/Lookup\",\n"));
  /* The streaming stubs carry the runtime's verbs; the old names stay as aliases. */
  assert_non_null(strstr(h, "int a__b__c__d__first__upload__send_wait(crpc_stream *s"));
  assert_non_null(strstr(h, "static inline int a__b__c__d__first__upload__write_wait(crpc_stream *s"));
  /* Comments are wrapped after their names are filled in: none is wider than 100 columns. */
  assert_int_equal(wide_comment_lines(h), 0);
  assert_int_equal(wide_comment_lines(c), 0);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

static void pair_without_services(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res =
      run_request("nosvc", "common/types.proto");

  (void)state;
  assert_null(res->error);
  assert_int_equal(res->n_file, 2);
  assert_non_null(strstr(file_content(res, "common/types.crpc.h"), "defines no service"));
  assert_non_null(
      strstr(file_content(res, "common/types.crpc.c"), "#include \"common/types.crpc.h\""));
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

/* ---- protobuf-c's file options (pb_c_file, extension 1019 of FileOptions) ------------------ */

static void c_package_names(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res = run_request("cpkg", "cpkg/svc.proto");
  const char *h, *c;

  (void)state;
  assert_null(res->error);
  assert_int_equal(res->n_file, 2);
  h = file_content(res, "cpkg/svc.crpc.h");
  c = file_content(res, "cpkg/svc.crpc.c");
  /* protobuf-c's names: this file's c_package, and the import's own for its types */
  assert_non_null(strstr(h, "extern const crpc_service_desc acme_c__svc__crpc_service;"));
  assert_non_null(
      strstr(h, "int acme_c__svc__get__call(crpc_channel *ch, const AcmeC__Req *request"));
  assert_non_null(strstr(h, "AcmeBase__Ping **response"));
  assert_non_null(strstr(h, "const AcmeC__Req__Sub *request"));
  assert_non_null(strstr(h, "const AcmeBase__Ping__Inner *request"));
  assert_non_null(strstr(h, "} AcmeC__Svc__Handlers;"));
  assert_null(strstr(h, "Acme__V1"));
  assert_null(strstr(h, "acme__v1"));
  assert_null(strstr(h, "Acme__Base__V2"));
  assert_null(strstr(h, "protobuf-c.pb-c.h"));
  /* constant __METHOD macros over the extern method array */
  assert_non_null(strstr(h, "extern const crpc_method_desc acme_c__svc__crpc_methods[3];"));
  assert_non_null(strstr(h, "#define ACME_C__SVC__GET__METHOD (&acme_c__svc__crpc_methods[0])"));
  /* the wire keeps the proto package */
  assert_non_null(strstr(c, "\"acme.v1.Svc/Get\""));
  assert_non_null(strstr(c, "    .input = &acme_c__req__descriptor,\n"
                            "    .output = &acme_base__ping__descriptor,\n"));
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

static void no_generate_writes_nothing(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res;

  (void)state;
  /* protobuf-c's own options file sets no_generate */
  res = run_request("cpkg", "protobuf-c/protobuf-c.proto");
  assert_null(res->error);
  assert_int_equal(res->n_file, 0);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
  /* and so does a file of the project's own, services and all */
  res = run_request("hidden", "cpkg/hidden.proto");
  assert_null(res->error);
  assert_int_equal(res->n_file, 0);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

static void bad_c_package(void **state)
{
  Google__Protobuf__Compiler__CodeGeneratorResponse *res =
      run_request("badcpkg", "badcpkg.proto");

  (void)state;
  assert_non_null(res->error);
  assert_non_null(strstr(res->error, "badcpkg.proto"));
  assert_non_null(strstr(res->error, "c_package"));
  assert_non_null(strstr(res->error, "acme-c"));
  assert_int_equal(res->n_file, 0);
  google__protobuf__compiler__code_generator_response__free_unpacked(res, NULL);
}

/* The extension's bytes are not a ProtobufCFileOptions (protoc never sends that): refused. */
static void undecodable_c_options(void **state)
{
  size_t len;
  uint8_t *packed = make_request("cpkg", "cpkg/svc.proto", &len);
  Google__Protobuf__Compiler__CodeGeneratorRequest *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, len, packed);
  int found = 0;

  (void)state;
  assert_non_null(req);
  free(packed);
  for (size_t i = 0; i < req->n_proto_file; i++) {
    Google__Protobuf__FileDescriptorProto *f = req->proto_file[i];

    if (strcmp(f->name, "cpkg/svc.proto") != 0)
      continue;
    assert_non_null(f->options);
    for (size_t u = 0; u < f->options->base.n_unknown_fields; u++) {
      ProtobufCMessageUnknownField *uf = &f->options->base.unknown_fields[u];

      if (uf->tag != 1019)
        continue;
      /* [length prefix] 0x32 (c_package) ... -> a group start (wire type 3) */
      assert_true(uf->len >= 2);
      assert_int_equal(uf->data[1], 0x32);
      uf->data[1] = 0x33;
      found = 1;
    }
  }
  assert_true(found);
  len = google__protobuf__compiler__code_generator_request__get_packed_size(req);
  packed = malloc(len);
  assert_non_null(packed);
  google__protobuf__compiler__code_generator_request__pack(req, packed);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  expect_internal_error(packed, len, NULL, "pb_c_file");
  free(packed);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(garbage_input),
      cmocka_unit_test(file_not_in_request),
      cmocka_unit_test(empty_request),
      cmocka_unit_test(colliding_methods),
      cmocka_unit_test(generates_pair),
      cmocka_unit_test(pair_without_services),
      cmocka_unit_test(c_package_names),
      cmocka_unit_test(no_generate_writes_nothing),
      cmocka_unit_test(bad_c_package),
      cmocka_unit_test(undecodable_c_options),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
