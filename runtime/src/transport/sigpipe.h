#ifndef CRPC_SIGPIPE_H
#define CRPC_SIGPIPE_H
/* Sets SIGPIPE to SIG_IGN when it still has its default disposition (see sigpipe.c). */
void crpc__ignore_sigpipe(void);
#endif
