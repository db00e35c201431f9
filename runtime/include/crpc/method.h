/* Method and service tables. protoc-gen-crpc emits one crpc_service_desc per `service` block;
 * the runtime uses it to name calls on the wire, to check message types, and to dispatch. Users
 * rarely touch these directly: the generated typed functions wrap them. */
#ifndef CRPC_METHOD_H
#define CRPC_METHOD_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "crpc/types.h"
#include "crpc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Streaming shape of a method (crpc_method_desc.flags). 0 is a unary method. */
enum crpc_method_flags {
  CRPC_METHOD_CLIENT_STREAMING = 1u << 0,
  CRPC_METHOD_SERVER_STREAMING = 1u << 1
};

/* Server-side trampoline emitted per method by protoc-gen-crpc: casts `request` to the method's
 * input type and calls the user's typed handler found in `impl` (the handler table given to
 * crpc_server_register()), or fails the call with UNIMPLEMENTED when that handler is NULL.
 * `request` belongs to the call and stays valid until the call is finished. */
typedef void (*crpc_dispatch_fn)(crpc_server_call *call, const ProtobufCMessage *request,
                                 const void *impl, void *user_data);

typedef struct crpc_method_desc {
  const char *name;                         /* "SayHello", as written in the .proto */
  const char *full_name;                    /* "helloworld.Greeter/SayHello": the name on the wire */
  const ProtobufCMessageDescriptor *input;  /* request type */
  const ProtobufCMessageDescriptor *output; /* response type */
  unsigned flags;                           /* enum crpc_method_flags */
  crpc_dispatch_fn dispatch;                /* server trampoline (see above) */
} crpc_method_desc;

typedef struct crpc_service_desc {
  unsigned abi;                     /* CRPC_GENERATED_ABI the table was generated for */
  const char *name;                 /* "Greeter" */
  const char *full_name;            /* "helloworld.Greeter" ("Greeter" without a package) */
  const char *proto_file;           /* the .proto it came from, as protoc named it */
  size_t n_methods;
  const crpc_method_desc *methods;  /* n_methods entries, in .proto order */
} crpc_service_desc;

/* The method of `svc` whose name (short, "SayHello") is `name`, or NULL. Thread-safe. */
CRPC_EXTERN const crpc_method_desc *crpc_service_find_method(const crpc_service_desc *svc,
                                                             const char *name);

#ifdef __cplusplus
}
#endif
#endif
