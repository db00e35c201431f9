/* See fuzz_sock.h. */
#include "fuzz_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* mkdtemp() is POSIX 2008 but glibc hides it without _DEFAULT_SOURCE under strict C11. */
char *mkdtemp(char *template);

int fs_socket_path(char *dir, size_t dir_len, char *path, size_t path_len) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 60)
    tmp = "/tmp";
  if ((size_t)snprintf(dir, dir_len, "%s/crpc-fuzz-XXXXXX", tmp) >= dir_len)
    return -1;
  if (mkdtemp(dir) == NULL)
    return -1;
  if ((size_t)snprintf(path, path_len, "%s/s.sock", dir) >= path_len)
    return -1;
  return 0;
}

void fs_socket_path_remove(const char *dir, const char *path) {
  unlink(path);
  rmdir(dir);
}

static int nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int addr(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path)
    return -1;
  strcpy(sa->sun_path, path);
  return 0;
}

int fs_connect(const char *path) {
  struct sockaddr_un sa;
  if (addr(&sa, path) != 0)
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  /* A Unix-domain connect completes as soon as the listener's backlog has room. */
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return nonblock(fd);
}

int fs_listen(const char *path) {
  struct sockaddr_un sa;
  if (addr(&sa, path) != 0)
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return nonblock(fd);
}

int fs_accept(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  return fd < 0 ? -1 : nonblock(fd);
}

long fs_write_some(int fd, const uint8_t *p, size_t n) {
  long total = 0;
  while ((size_t)total < n) {
    ssize_t w = send(fd, p + total, n - (size_t)total, MSG_NOSIGNAL);
    if (w > 0) {
      total += w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    return -1;
  }
  return total;
}

int fs_drain(int fd, size_t *got) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      if (got != NULL)
        *got += (size_t)r;
      continue;
    }
    if (r == 0)
      return 1;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 0;
    return 1;
  }
}

static void sigpipe_abort(int sig) {
  (void)sig;
  static const char msg[] = "SIGPIPE: crpc wrote to a closed peer\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  abort();
}

void fs_sigpipe_policy(void) {
  const char *p = getenv("CRPC_FUZZ_SIGPIPE");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  if (p != NULL && strcmp(p, "default") == 0)
    sa.sa_handler = SIG_DFL; /* leave it to crpc, as an application that never heard of SIGPIPE */
  else
    sa.sa_handler = p != NULL && strcmp(p, "abort") == 0 ? sigpipe_abort : SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}
