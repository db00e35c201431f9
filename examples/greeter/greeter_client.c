/* Greeter client: one blocking call.
 *
 *   greeter_client [NAME] [ENDPOINT]
 *
 * Prints the reply, or the call's status and exits 1. */
#include <stdio.h>

#include <crpc/crpc.h>

#include "greeter.crpc.h"

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "world";
  const char *endpoint = argc > 2 ? argv[2] : "tcp://127.0.0.1:50051";

  crpc_channel *ch;
  int rc = crpc_channel_new(&ch, NULL, endpoint);
  if (rc != 0) {
    fprintf(stderr, "greeter_client: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = (char *)name;
  Helloworld__HelloReply *reply = NULL;
  crpc_status status;
  crpc_call_opts opts = {.timeout_ms = 5000};
  rc = helloworld__greeter__say_hello__call(ch, &req, &reply, &status, &opts);
  int ok = rc == 0 && status.code == CRPC_STATUS_OK;
  if (ok)
    printf("%s\n", reply->message);
  else
    fprintf(stderr, "greeter_client: SayHello failed: %s: %s\n", crpc_code_name(status.code),
            status.message);
  if (reply) helloworld__hello_reply__free_unpacked(reply, NULL);
  crpc_status_reset(&status);
  crpc_channel_close(ch, NULL, NULL);
  return ok ? 0 : 1;
}
