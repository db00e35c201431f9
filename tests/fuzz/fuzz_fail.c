/* FUZZ_CHECK's failure path, shared by every target. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

_Noreturn void fuzz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
  abort();
}
