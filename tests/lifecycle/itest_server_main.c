/* A stand-alone Echo server for tests that need the server in another process (to kill it).
 *
 *   itest_server ENDPOINT
 *
 * Serves itest.Test with the harness's handlers on a private loop, prints
 * "listening on <endpoint with the bound port>" and serves until SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "itest.h"

static crpc_server *server;

static void on_signal(int sig) {
  (void)sig;
  crpc_server_stop(server);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: itest_server ENDPOINT\n");
    return 2;
  }
  static itest_stats stats;
  int port = 0, rc;
  if ((rc = crpc_server_new(&server, NULL)) != 0 ||
      (rc = itest__test__crpc_register(server, &itest_echo_handlers, &stats)) != 0 ||
      (rc = crpc_server_listen(server, argv[1], &port)) != 0) {
    fprintf(stderr, "itest_server: %s: %s\n", argv[1], crpc_strerror(rc));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (strncmp(argv[1], "tcp:", 4) == 0) {
    const char *colon = strrchr(argv[1], ':');
    printf("listening on %.*s:%d\n", (int)(colon - argv[1]), argv[1], port);
  } else {
    printf("listening on %s\n", argv[1]);
  }
  fflush(stdout);
  rc = crpc_server_run(server);
  crpc_server_close(server, NULL, NULL);
  return rc == 0 ? 0 : 1;
}
