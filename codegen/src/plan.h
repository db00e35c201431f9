/* The plan for one .proto: every C name the generated pair will use, decided before anything is
 * written, so that the emitters only print.
 *
 * Names follow protobuf-c's scheme (names.h). For service helloworld.Greeter, rpc SayHello:
 *   helloworld__greeter__crpc_service        the crpc_service_desc (extern)
 *   helloworld__greeter__crpc_methods        its method array (extern)
 *   helloworld__greeter__crpc_register       registers a handler table with a server
 *   Helloworld__Greeter__Handlers            the handler table type
 *   HELLOWORLD__GREETER__SAY_HELLO__METHOD   &helloworld__greeter__crpc_methods[i], a constant
 *   helloworld__greeter__say_hello__call / __start / __reply   typed stubs
 *   Helloworld__Greeter__SayHelloDone        the async completion type
 *   helloworld__greeter__say_hello__dispatch / __adapter        static trampolines
 * and for a streaming method (rpc Chat):
 *   helloworld__greeter__chat__server_write / __set_reader      server helpers
 *   Helloworld__Greeter__ChatHandlers                           the client's typed callbacks
 *   helloworld__greeter__chat__stream / __write                 async client
 *   helloworld__greeter__chat__open / __send_wait / __recv_wait / __finish_wait   blocking client
 *   helloworld__greeter__chat__dispatch / __read_adapter / __on_read_adapter /
 *   __on_writable_adapter / __on_done_adapter                   static trampolines
 *   helloworld__greeter__chat__send / __write_wait / __read_wait / __finish   deprecated aliases
 *
 * Collisions. protobuf-c's own names (for every message, enum and service of the file and of
 * everything it imports) are entered in a set first; crpc's names then claim theirs in a fixed
 * order (all service-level names in .proto order, then the method names in .proto order, then
 * the streaming stubs' current names, added after the aliases, in .proto order: so every name an
 * older protoc-gen-crpc gave a file is still given). A name that is taken gets '_' appended until
 * it is free, and the header lists every such rename.
 * When protobuf-c's own output would not compile (two methods of a service with one protobuf-c
 * name, such as SayHello and sayHello; a method called Init or Descriptor; a service whose
 * protobuf-c name another definition has), planning fails with a message for the response. */
#ifndef CRPC_GEN_PLAN_H
#define CRPC_GEN_PLAN_H

#include <stddef.h>

#include "arena.h"
#include "request.h"
#include "strbuf.h"

typedef struct gen_method {
  const char *name;        /* "SayHello", as written in the .proto */
  const char *full_name;   /* "helloworld.Greeter/SayHello" */
  const char *input_full;  /* "helloworld.HelloRequest" */
  const char *output_full;
  const char *input_c;     /* "Helloworld__HelloRequest" */
  const char *output_c;
  const char *input_desc;  /* "helloworld__hello_request__descriptor" */
  const char *output_desc;
  unsigned flags;          /* CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING */
  const char *macro;
  /* every method: */
  const char *member;      /* handler-table member: "say_hello" */
  const char *dispatch_fn; /* static server trampoline */
  /* unary methods only (NULL for streaming ones): */
  const char *call_fn;
  const char *start_fn;
  const char *reply_fn;
  const char *done_type;
  const char *adapter_fn;
  /* streaming methods only (NULL for unary ones). Each typed stub is named by the verb of the
   * runtime function it wraps (codegen/README.md, "Verbs"): */
  const char *server_write_fn;     /* server: typed crpc_server_call_write() */
  const char *set_reader_fn;       /* server: typed reader (client- and bidi-streaming only) */
  const char *read_adapter_fn;     /* static: crpc_server_read_cb -> the typed on_read */
  const char *stream_handlers_type; /* client: "Helloworld__Greeter__SayHelloHandlers" */
  const char *stream_fn;           /* client, async: starts the stream */
  const char *write_fn;            /* crpc_stream_write() */
  const char *open_fn;             /* client, blocking: crpc_channel_stream_open() */
  const char *send_wait_fn;        /* crpc_stream_send_wait() */
  const char *recv_wait_fn;        /* crpc_stream_recv_wait() */
  const char *finish_wait_fn;      /* crpc_stream_finish_wait() */
  const char *on_read_adapter_fn;  /* static client adapters */
  const char *on_writable_adapter_fn;
  const char *on_done_adapter_fn;
  /* The names protoc-gen-crpc 0.1.0 gave the same stubs, kept as deprecated aliases (static
   * inline in the header) so that code written against them still compiles: */
  const char *old_send_fn;         /* -> server_write_fn */
  const char *old_write_wait_fn;   /* -> send_wait_fn */
  const char *old_read_wait_fn;    /* -> recv_wait_fn */
  const char *old_finish_fn;       /* -> finish_wait_fn */
} gen_method;

typedef struct gen_service {
  const char *name;           /* "Greeter" */
  const char *full_name;      /* "helloworld.Greeter" (on the wire) */
  const char *c_full_name;    /* the same with option (pb_c_file).c_package applied: C names */
  const char *table;
  const char *methods_array;
  const char *handlers_type;
  const char *register_fn;
  size_t n_methods;
  gen_method *methods;
} gen_service;

typedef struct gen_file {
  const char *proto_name;   /* "dir/x.proto", as protoc names it */
  const char *header_name;  /* "dir/x.crpc.h" */
  const char *source_name;  /* "dir/x.crpc.c" */
  const char *pbc_header;   /* "dir/x.pb-c.h", as protoc-c names it */
  const char *guard;        /* include guard */
  const char *syntax;       /* "proto2" / "proto3" / ... */
  size_t n_services;
  gen_service *services;
  strbuf renames;           /* one line per renamed identifier; release with plan_release() */
} gen_file;

enum plan_result {
  PLAN_OK = 0,
  PLAN_PROTO_ERROR = 1,    /* a problem of the .proto: message in `error`, for the response */
  PLAN_INTERNAL_ERROR = -1 /* out of memory or an inconsistent request: message in `error` */
};

enum plan_result plan_file(arena *a, const gen_request *req, const gen_file_proto *file,
                           gen_file *out, strbuf *error);

void plan_release(gen_file *f);

#endif
