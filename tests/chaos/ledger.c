/* The shared run ledger; see ledger.h. */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEDGER_MAGIC 0x4c454447u /* "LEDG" */

static int map_fd(chaos_ledger *l, int fd, size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  l->hdr = p;
  l->runs = (atomic_uchar *)((char *)p + sizeof(chaos_ledger_hdr));
  l->map_len = len;
  return 0;
}

int chaos_ledger_create(chaos_ledger *l, const char *path, uint32_t n) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  size_t len = sizeof(chaos_ledger_hdr) + n;
  int rc = ftruncate(fd, (off_t)len) == 0 ? map_fd(l, fd, len) : -errno;
  close(fd);
  if (rc != 0) return rc;
  l->hdr->magic = LEDGER_MAGIC;
  l->hdr->n = n;
  atomic_store(&l->hdr->runs_total, 0);
  atomic_store(&l->hdr->out_of_range, 0);
  return 0;
}

int chaos_ledger_open(chaos_ledger *l, const char *path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int rc = fstat(fd, &st) == 0 ? 0 : -errno;
  if (rc == 0 && (size_t)st.st_size < sizeof(chaos_ledger_hdr)) rc = -EINVAL;
  if (rc == 0) rc = map_fd(l, fd, (size_t)st.st_size);
  close(fd);
  if (rc != 0) return rc;
  if (l->hdr->magic != LEDGER_MAGIC || sizeof(chaos_ledger_hdr) + l->hdr->n > l->map_len) {
    chaos_ledger_close(l);
    return -EINVAL;
  }
  return 0;
}

void chaos_ledger_record(chaos_ledger *l, uint64_t id) {
  atomic_fetch_add(&l->hdr->runs_total, 1);
  if (id >= l->hdr->n) {
    atomic_fetch_add(&l->hdr->out_of_range, 1);
    return;
  }
  unsigned char old = atomic_load(&l->runs[id]);
  while (old < 255 && !atomic_compare_exchange_weak(&l->runs[id], &old, (unsigned char)(old + 1))) {
  }
}

unsigned chaos_ledger_runs(const chaos_ledger *l, uint64_t id) {
  return id < l->hdr->n ? atomic_load(&l->runs[id]) : 0;
}

void chaos_ledger_close(chaos_ledger *l) {
  if (l->hdr) munmap(l->hdr, l->map_len);
  l->hdr = NULL;
  l->runs = NULL;
}
