/* Writing to a socket whose peer has gone raises SIGPIPE, which kills a process that kept the
 * default disposition; libuv leaves it alone. A network library must not let a vanished peer
 * kill its host, so the first channel or server ignores SIGPIPE, unless the application has
 * installed a disposition of its own (then it is the application's choice, and untouched). The
 * write then fails with EPIPE and only that connection closes. */
#include <signal.h>
#include <stddef.h>

#include "transport/sigpipe.h"

void crpc__ignore_sigpipe(void) {
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) != 0 || old.sa_handler != SIG_DFL) return;
  struct sigaction ign;
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ign.sa_flags = 0;
  sigaction(SIGPIPE, &ign, NULL);
}
