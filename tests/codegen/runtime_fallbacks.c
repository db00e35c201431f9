/* Weak fallbacks for the runtime functions the generated stubs reference, so that the table test
 * links while parts of the runtime (server.c, server_call.c) are still being written. The table
 * test never calls them. A real definition, when the runtime has one, takes precedence. */
#include <crpc/crpc.h>

#define WEAK __attribute__((weak))

WEAK int crpc_channel_unary(crpc_channel *ch, const crpc_method_desc *method,
                            const ProtobufCMessage *request, ProtobufCMessage **response,
                            crpc_status *status, const crpc_call_opts *opts)
{
  (void)ch, (void)method, (void)request, (void)response, (void)status, (void)opts;
  return CRPC_ENOTSUP;
}

WEAK int crpc_gen_unary_async(crpc_channel *ch, const crpc_method_desc *method,
                              const ProtobufCMessage *request, const crpc_call_opts *opts,
                              crpc_unary_cb cb, crpc_fn user_fn, void *user_data,
                              crpc_call **call_out)
{
  (void)ch, (void)method, (void)request, (void)opts, (void)cb, (void)user_fn, (void)user_data;
  (void)call_out;
  return CRPC_ENOTSUP;
}

WEAK crpc_fn crpc_call_user_fn(const crpc_call *call)
{
  (void)call;
  return NULL;
}

WEAK int crpc_server_register(crpc_server *srv, const crpc_service_desc *svc, const void *impl,
                              void *user_data)
{
  (void)srv, (void)svc, (void)impl, (void)user_data;
  return CRPC_ENOTSUP;
}

WEAK int crpc_server_call_reply(crpc_server_call *call, const ProtobufCMessage *response)
{
  (void)call, (void)response;
  return CRPC_ENOTSUP;
}

WEAK int crpc_server_call_fail(crpc_server_call *call, crpc_code code, const char *message)
{
  (void)call, (void)code, (void)message;
  return CRPC_ENOTSUP;
}
