/* What every crpc fuzz target provides, besides libFuzzer's LLVMFuzzerTestOneInput().
 *
 * The targets are built twice: as libFuzzer programs (clang, CRPC_FUZZ=ON) and, with any
 * compiler, linked to replay.c, which feeds each file of the checked-in corpus once so that
 * ctest replays every seed and every past finding under the normal sanitizer build. */
#ifndef CRPC_FUZZ_H
#define CRPC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Releases what a target keeps between inputs (a server, a loop, a temp dir) and checks that
 * nothing is left (e.g. uv_loop_close() == 0). Called once by the replay driver after the last
 * input; libFuzzer never calls it (the process just exits). */
void fuzz_teardown(void);

/* A target's invariant: on failure, prints where and aborts, so that libFuzzer saves the input
 * and the replay test fails. Active in every build type (assert() may be compiled out). */
#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond))                                                                              \
      fuzz_fail(__FILE__, __LINE__, #cond);                                                   \
  } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

#endif
