/* Greeter server: answers SayHello on the endpoint given (default tcp://127.0.0.1:50051) until
 * interrupted.
 *
 *   greeter_server [ENDPOINT]
 *
 * Prints "listening on ENDPOINT" (with the bound port when 0 was asked for) once it serves. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <crpc/crpc.h>

#include "greeter.crpc.h"

static crpc_server *server;

static void say_hello(crpc_server_call *call, const Helloworld__HelloRequest *req, void *ud) {
  (void)ud;
  if (!req->name || !req->name[0]) {
    crpc_server_call_fail(call, CRPC_STATUS_INVALID_ARGUMENT, "name must not be empty");
    return;
  }
  char text[256];
  snprintf(text, sizeof text, "Hello, %s", req->name);
  Helloworld__HelloReply reply = HELLOWORLD__HELLO_REPLY__INIT;
  reply.message = text;
  helloworld__greeter__say_hello__reply(call, &reply); /* encodes now: text may go */
}

static const Helloworld__Greeter__Handlers handlers = {.say_hello = say_hello};

static void on_signal(int sig) {
  (void)sig;
  crpc_server_stop(server); /* async-signal-safe */
}

int main(int argc, char **argv) {
  const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:50051";
  int port = 0, rc;
  if ((rc = crpc_server_new(&server, NULL)) != 0 ||
      (rc = helloworld__greeter__crpc_register(server, &handlers, NULL)) != 0 ||
      (rc = crpc_server_listen(server, endpoint, &port)) != 0) {
    fprintf(stderr, "greeter_server: %s: %s\n", endpoint, crpc_strerror(rc));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (strncmp(endpoint, "tcp:", 4) == 0 && strstr(endpoint, ":0") == endpoint + strlen(endpoint) - 2)
    printf("listening on port %d\n", port);
  else
    printf("listening on %s\n", endpoint);
  fflush(stdout);
  rc = crpc_server_run(server);
  crpc_server_close(server, NULL, NULL);
  return rc == 0 ? 0 : 1;
}
