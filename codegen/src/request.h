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
