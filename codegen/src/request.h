/* Reading protoc's CodeGeneratorRequest and finding things in it. */
#ifndef CRPC_GEN_REQUEST_H
#define CRPC_GEN_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

#include "arena.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest gen_request;
typedef Google__Protobuf__FileDescriptorProto gen_file_proto;
typedef Google__Protobuf__DescriptorProto gen_message_proto;
typedef Google__Protobuf__EnumDescriptorProto gen_enum_proto;
typedef Google__Protobuf__ServiceDescriptorProto gen_service_proto;
typedef Google__Protobuf__MethodDescriptorProto gen_method_proto;

/* protobuf-c's options of a file: `option (pb_c_file).<name> = ...;`, the extension
 *   extend google.protobuf.FileOptions { optional ProtobufCFileOptions pb_c_file = 1019; }
 * of protobuf-c/protobuf-c.proto. descriptor.proto is decoded without that file, so the extension
 * arrives as an unknown field of FileOptions (possibly several records, merged in order as
 * protobuf does: the last value of a field wins). Only the two options that change what
 * protobuf-c writes into crpc's reach are read; the others are skipped. */
#define GEN_PB_C_FILE_FIELD 1019u

typedef struct gen_c_options {
  int no_generate;         /* ProtobufCFileOptions.no_generate (1): protoc-c writes no pb-c pair */
  int has_c_package;       /* c_package (6) is set, possibly to "" */
  const char *c_package;   /* its bytes (not NUL-terminated), inside the request */
  size_t c_package_len;
} gen_c_options;

/* Reads f's protobuf-c options into *out (all zero when there are none). Returns 0, or -1 when
 * the extension's bytes are not a valid ProtobufCFileOptions. */
int request_c_options(const gen_file_proto *f, gen_c_options *out);

/* Reads all of `in` into a malloc'ed buffer (*data, free() it; NULL when empty). Returns 0, or -1
 * with errno set (read error, out of memory, or EFBIG beyond max_len bytes). */
int request_read_all(FILE *in, size_t max_len, uint8_t **data, size_t *len);

/* Decodes and checks a request. Returns it (release with request_free()) or NULL with a
 * description in err: undecodable bytes, or a request protoc would never send (a file to
 * generate that is missing, names that are not identifiers, methods without types, ...). */
gen_request *request_decode(const uint8_t *data, size_t len, char *err, size_t err_len);

void request_free(gen_request *req);

/* The file of that name in req->proto_file, or NULL. */
const gen_file_proto *request_find_file(const gen_request *req, const char *name);

/* `file` and every file it imports, directly or not, each once, `file` first. Returns the count
 * and sets *out (arena-owned), or returns (size_t)-1 when out of memory. Imports that are not in
 * the request are skipped. */
size_t request_closure(const gen_request *req, const gen_file_proto *file, arena *a,
                       const gen_file_proto ***out);

/* Finds the message type with the fully-qualified name `type_name` (".pkg.Outer.Inner") among
 * files[0..n). Returns it and sets *file_out, or returns NULL. */
const gen_message_proto *request_find_message(const gen_file_proto *const *files, size_t n,
                                              const char *type_name,
                                              const gen_file_proto **file_out);

#endif
