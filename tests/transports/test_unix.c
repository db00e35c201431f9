/* Unix socket endpoints: the socket file a server creates and removes, its mode
 * (CRPC_OPT_UNIX_SOCKET_MODE), Linux abstract sockets ("unix:@NAME") and the error for a missing
 * directory. Servers and channels share one loop run by the test; every path lives in a private
 * temporary directory removed at the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "itest.h"

typedef struct fixture {
  uv_loop_t loop;
  char dir[64];
  char path[128];   /* dir/s.sock */
  char ep[160];     /* unix:dir/s.sock */
  itest_stats stats;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  snprintf(f->dir, sizeof f->dir, "/tmp/crpc-unix-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/s.sock", f->dir);
  snprintf(f->ep, sizeof f->ep, "unix:%s", f->path);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  unlink(f->path);
  rmdir(f->dir);
  itest_loop_finish(&f->loop);
  free(f);
  return 0;
}

static void closed_cb(void *ud) { ++*(int *)ud; }
static int flag_set(void *p) { return *(int *)p != 0; }

static crpc_server *server_on(fixture *f, const char *ep, int64_t mode) {
  crpc_server *srv;
  assert_int_equal(crpc_server_new(&srv, &f->loop), 0);
  if (mode >= 0) assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_UNIX_SOCKET_MODE, mode), 0);
  assert_int_equal(itest__test__crpc_register(srv, &itest_echo_handlers, &f->stats), 0);
  int rc = crpc_server_listen(srv, ep, NULL);
  if (rc != 0) fail_msg("listen on %s: %s", ep, crpc_strerror(rc));
  return srv;
}

static void server_close(fixture *f, crpc_server *srv) {
  int closed = 0;
  crpc_server_close(srv, closed_cb, &closed);
  assert_true(itest_run_until(&f->loop, flag_set, &closed, 10000));
  assert_int_equal(closed, 1);
}

/* One Echo call through a loop channel to ep, on the fixture's loop: its completion. */
static itest_rec call_once(fixture *f, const char *ep) {
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &f->loop, ep), 0);
  itest_rec rec;
  memset(&rec, 0, sizeof rec);
  char buf[32];
  Itest__EchoRequest req;
  itest_req_init(&req, 7, buf, sizeof buf);
  crpc_call_opts opts = {.timeout_ms = 10000};
  assert_int_equal(itest__test__echo__start(ch, &req, &opts, itest_rec_done, &rec, NULL), 0);
  itest_recs all = {&rec, 1};
  assert_true(itest_run_until(&f->loop, itest_all_done, &all, 15000));
  itest_channel_close(&f->loop, ch);
  return rec;
}

static void assert_socket_at(const char *path, const struct stat *want) {
  struct stat st;
  if (lstat(path, &st) != 0) fail_msg("%s is gone: %s", path, strerror(errno));
  assert_true(S_ISSOCK(st.st_mode));
  assert_true(st.st_dev == want->st_dev && st.st_ino == want->st_ino);
}

/* Server A's file is removed and server B binds the same path: closing A must leave B's live
 * socket in place (B still answers), and closing B then removes B's own file. */
static void close_keeps_other_servers_socket(void **state) {
  fixture *f = *state;
  crpc_server *a = server_on(f, f->ep, -1);
  assert_int_equal(unlink(f->path), 0);
  crpc_server *b = server_on(f, f->ep, -1);
  struct stat b_st;
  assert_int_equal(lstat(f->path, &b_st), 0);
  server_close(f, a);
  assert_socket_at(f->path, &b_st);
  itest_rec rec = call_once(f, f->ep);
  itest_assert_echo(&rec, 7);
  server_close(f, b);
  struct stat st;
  assert_int_equal(lstat(f->path, &st), -1);
  assert_int_equal(errno, ENOENT);
}

/* A regular file that replaced the server's socket is not removed when the server closes, and
 * listening over a regular file fails with EADDRINUSE and leaves it as it was. */
static void close_keeps_regular_file(void **state) {
  fixture *f = *state;
  crpc_server *a = server_on(f, f->ep, -1);
  assert_int_equal(unlink(f->path), 0);
  FILE *fp = fopen(f->path, "w");
  assert_non_null(fp);
  assert_int_equal(fputs("precious", fp) >= 0, 1);
  assert_int_equal(fclose(fp), 0);
  server_close(f, a);
  char got[16] = {0};
  fp = fopen(f->path, "r");
  if (!fp) fail_msg("the regular file at %s was removed by the server's close", f->path);
  assert_non_null(fgets(got, sizeof got, fp));
  fclose(fp);
  assert_string_equal(got, "precious");

  crpc_server *c;
  assert_int_equal(crpc_server_new(&c, &f->loop), 0);
  assert_int_equal(crpc_server_listen(c, f->ep, NULL), UV_EADDRINUSE);
  server_close(f, c);
  struct stat st;
  assert_int_equal(lstat(f->path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_size, 8);
}

/* CRPC_OPT_UNIX_SOCKET_MODE gives the file exactly that mode whatever the umask; 0 (the
 * default) leaves it to the umask. The socket still serves. */
static void socket_mode(void **state) {
  fixture *f = *state;
  static const mode_t umasks[] = {0, 022, 077, 0777};
  static const int64_t modes[] = {0660, 0600, 0};
  for (size_t u = 0; u < sizeof umasks / sizeof umasks[0]; u++) {
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
      mode_t old = umask(umasks[u]);
      crpc_server *srv = server_on(f, f->ep, modes[m]);
      umask(old);
      struct stat st;
      assert_int_equal(lstat(f->path, &st), 0);
      mode_t want = modes[m] ? (mode_t)modes[m] : (0777 & ~umasks[u]);
      if ((st.st_mode & 07777) != want)
        fail_msg("umask %03o, option %03o: mode %03o, expected %03o", (unsigned)umasks[u],
                 (unsigned)modes[m], (unsigned)(st.st_mode & 07777), (unsigned)want);
      if (want & 0200) { /* the owner may connect */
        itest_rec rec = call_once(f, f->ep);
        itest_assert_echo(&rec, 7);
      }
      server_close(f, srv);
    }
  }
  /* Out of range, and not a channel option. */
  crpc_server *srv;
  assert_int_equal(crpc_server_new(&srv, &f->loop), 0);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_UNIX_SOCKET_MODE, 01000), CRPC_EINVAL);
  assert_int_equal(crpc_server_set_option(srv, CRPC_OPT_UNIX_SOCKET_MODE, -1), CRPC_EINVAL);
  server_close(f, srv);
  crpc_channel *ch;
  assert_int_equal(crpc_channel_new(&ch, &f->loop, f->ep), 0);
  assert_int_equal(crpc_channel_set_option(ch, CRPC_OPT_UNIX_SOCKET_MODE, 0600), CRPC_EINVAL);
  itest_channel_close(&f->loop, ch);
}

/* A listen whose directory does not exist reports ENOENT (libuv's bind reported EACCES). */
static void missing_directory(void **state) {
  fixture *f = *state;
  char ep[200];
  snprintf(ep, sizeof ep, "unix:%s/no-such-dir/s.sock", f->dir);
  crpc_server *srv;
  assert_int_equal(crpc_server_new(&srv, &f->loop), 0);
  int rc = crpc_server_listen(srv, ep, NULL);
  if (rc != UV_ENOENT) fail_msg("listen on %s: %s, expected ENOENT", ep, crpc_err_name(rc));
  server_close(f, srv);
}

#ifdef __linux__
/* "unix:@NAME" is a Linux abstract socket: a call goes through, no file is created (neither
 * "@NAME" nor "NAME" in the working directory), a second server on the name is EADDRINUSE, and
 * once the server closed the name is free again. */
static void abstract_socket(void **state) {
  fixture *f = *state;
  char name[64], ep[80], at[70];
  snprintf(name, sizeof name, "crpc-itest-%ld", (long)getpid());
  snprintf(ep, sizeof ep, "unix:@%s", name);
  snprintf(at, sizeof at, "@%s", name);
  char cwd[4096];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(f->dir), 0); /* where a file named after the endpoint would appear */
  crpc_server *srv = server_on(f, ep, 0600);
  struct stat st;
  assert_int_equal(lstat(at, &st), -1);
  assert_int_equal(lstat(name, &st), -1);

  /* The kernel has the name: a plain connect to the abstract address succeeds. */
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path + 1, name, strlen(name));
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(
      connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))),
      0);
  close(fd);

  itest_rec rec = call_once(f, ep);
  itest_assert_echo(&rec, 7);

  crpc_server *dup;
  assert_int_equal(crpc_server_new(&dup, &f->loop), 0);
  assert_int_equal(crpc_server_listen(dup, ep, NULL), UV_EADDRINUSE);
  server_close(f, dup);

  server_close(f, srv);
  assert_int_equal(lstat(at, &st), -1);
  rec = call_once(f, ep); /* nothing listens on the name any more */
  assert_int_equal(rec.code, CRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(rec.message, ep));
  srv = server_on(f, ep, -1); /* and it is free to bind again */
  rec = call_once(f, ep);
  itest_assert_echo(&rec, 7);
  server_close(f, srv);
  assert_int_equal(chdir(cwd), 0);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(close_keeps_other_servers_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(close_keeps_regular_file, setup, teardown),
      cmocka_unit_test_setup_teardown(socket_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(missing_directory, setup, teardown),
#ifdef __linux__
      cmocka_unit_test_setup_teardown(abstract_socket, setup, teardown),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
