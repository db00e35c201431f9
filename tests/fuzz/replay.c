/* Replay driver: runs a fuzz target's LLVMFuzzerTestOneInput() once on each file named on the
 * command line, or on each regular file of a named directory (sorted, so runs are repeatable),
 * then fuzz_teardown(). Used by the fuzz_replay_<target> tests with any compiler, so that the
 * checked-in corpus is a regression suite under the gcc+ASan build too.
 *
 *   fuzz_replay_frame_decoder tests/fuzz/corpus/frame_decoder [more files or dirs...]
 *
 * Each input's CPU time is measured: one above CRPC_FUZZ_SLOW_MS milliseconds (default 100) is
 * reported as SLOW on stderr, and fails the run when CRPC_FUZZ_SLOW_FAIL=1 (tests/fuzz/run.sh
 * replays the grown corpora this way; ctest does not, as sanitizer builds vary in speed).
 *
 * Exit status 0 when every input ran (a crash aborts the process with the sanitizer's report);
 * 1 when an argument cannot be read, names no input at all, or a slow input failed the run. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"

static double slow_ms = 100;
static int slow_fail, n_slow;

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (nb == NULL)
        free(buf);
      buf = nb;
      cap *= 2;
    }
  }
  int bad = buf == NULL || ferror(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "%s: cannot read\n", path);
    free(buf);
    return -1;
  }
  /* An exact-size copy: a read past the input is caught by AddressSanitizer. */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
  clock_t t0 = clock();
  LLVMFuzzerTestOneInput(exact, len);
  double ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
  free(exact);
  if (ms > slow_ms) {
    fprintf(stderr, "SLOW %s: %.1f ms of CPU (limit %.0f ms)\n", path, ms, slow_ms);
    n_slow++;
  }
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir; returns how many, or -1. */
static int run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    perror(dir);
    return -1;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char **nn = realloc(names, (n + 1) * sizeof *names);
    size_t plen = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(plen);
    if (nn == NULL || p == NULL) {
      free(p);
      names = nn != NULL ? nn : names;
      break;
    }
    names = nn;
    snprintf(p, plen, "%s/%s", dir, e->d_name);
    names[n++] = p;
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      if (run_file(names[i]) != 0)
        count = -1;
      else if (count >= 0)
        count++;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

int main(int argc, char **argv) {
  int total = 0;
  const char *e = getenv("CRPC_FUZZ_SLOW_MS");
  if (e != NULL && atof(e) > 0)
    slow_ms = atof(e);
  e = getenv("CRPC_FUZZ_SLOW_FAIL");
  slow_fail = e != NULL && strcmp(e, "1") == 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    int n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) == 0 ? 1 : -1);
    if (n < 0)
      return 1;
    total += n;
  }
  fuzz_teardown();
  if (total == 0) {
    fprintf(stderr, "%s: no inputs\n", argv[0]);
    return 1;
  }
  fprintf(stderr, "replayed %d inputs, %d slow\n", total, n_slow);
  return slow_fail && n_slow > 0 ? 1 : 0;
}
