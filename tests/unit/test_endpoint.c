/* Endpoint parsing and canonical formatting: accepted forms, and every malformed kind refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crpc/error.h"
#include "transport/endpoint.h"

static void check_tcp(const char *s, const char *host, int port, int v6, const char *canon) {
  crpc__endpoint ep;
  char buf[512];
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  assert_int_equal(ep.kind, CRPC__EP_TCP);
  assert_string_equal(ep.host, host);
  assert_int_equal(ep.port, port);
  assert_int_equal(ep.host_is_v6, v6);
  int n = crpc__endpoint_format(&ep, buf, sizeof buf);
  assert_int_equal(n, strlen(canon));
  assert_string_equal(buf, canon);
  /* The canonical form parses back to the same endpoint. */
  crpc__endpoint again;
  assert_int_equal(crpc__endpoint_parse(buf, &again), 0);
  assert_string_equal(again.host, ep.host);
  assert_int_equal(again.port, ep.port);
}

static void check_unix(const char *s, const char *path, const char *canon) {
  crpc__endpoint ep;
  char buf[512];
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  assert_int_equal(ep.kind, CRPC__EP_UNIX);
  assert_string_equal(ep.path, path);
  assert_int_equal(ep.abstract, 0);
  assert_int_equal(crpc__endpoint_format(&ep, buf, sizeof buf), strlen(canon));
  assert_string_equal(buf, canon);
}

static void test_good(void **state) {
  (void)state;
  check_tcp("tcp://127.0.0.1:80", "127.0.0.1", 80, 0, "tcp://127.0.0.1:80");
  check_tcp("tcp://localhost:0", "localhost", 0, 0, "tcp://localhost:0");
  check_tcp("tcp://my-host.example_1.com:65535", "my-host.example_1.com", 65535, 0,
            "tcp://my-host.example_1.com:65535");
  check_tcp("tcp://h:007", "h", 7, 0, "tcp://h:7");
  check_tcp("tcp://[::1]:5000", "::1", 5000, 1, "tcp://[::1]:5000");
  check_tcp("tcp://[0:0:0:0:0:0:0:1]:1", "::1", 1, 1, "tcp://[::1]:1");
  check_tcp("tcp://[2001:DB8::A]:443", "2001:db8::a", 443, 1, "tcp://[2001:db8::a]:443");
  check_tcp("tcp://[::ffff:1.2.3.4]:9", "::ffff:1.2.3.4", 9, 1, "tcp://[::ffff:1.2.3.4]:9");
  check_unix("unix:/run/app.sock", "/run/app.sock", "unix:/run/app.sock");
  check_unix("unix:///run/app.sock", "/run/app.sock", "unix:/run/app.sock");
  check_unix("unix:relative.sock", "relative.sock", "unix:relative.sock");
  check_unix("unix:./@file", "./@file", "unix:./@file");
}

/* "unix:@NAME" is a Linux abstract socket: the name without its '@', an address of a NUL byte
 * then exactly the name (no terminating NUL); elsewhere it is refused, never taken for a file. */
static void test_abstract(void **state) {
  (void)state;
  crpc__endpoint ep;
#ifdef __linux__
  char buf[512];
  static const char *const forms[] = {"unix:@crpc.test", "unix://@crpc.test"};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(crpc__endpoint_parse(forms[i], &ep), 0);
    assert_int_equal(ep.kind, CRPC__EP_UNIX);
    assert_int_equal(ep.abstract, 1);
    assert_string_equal(ep.path, "crpc.test");
    assert_int_equal(crpc__endpoint_format(&ep, buf, sizeof buf), strlen("unix:@crpc.test"));
    assert_string_equal(buf, "unix:@crpc.test");
    struct sockaddr_un sa;
    socklen_t len = crpc__endpoint_sockaddr_un(&ep, &sa);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + strlen("crpc.test"));
    assert_int_equal(sa.sun_family, AF_UNIX);
    assert_int_equal(sa.sun_path[0], 0);
    assert_memory_equal(sa.sun_path + 1, "crpc.test", strlen("crpc.test"));
  }
  /* The longest name: sun_path less its leading NUL. */
  char s[300], want[CRPC__EP_PATH_MAX + 1];
  memset(want, 'n', CRPC__EP_PATH_MAX);
  want[CRPC__EP_PATH_MAX] = '\0';
  snprintf(s, sizeof s, "unix:@%s", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  assert_string_equal(ep.path, want);
  snprintf(s, sizeof s, "unix:@%sn", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), CRPC_EENDPOINT);
  assert_int_equal(crpc__endpoint_parse("unix:@", &ep), CRPC_EENDPOINT);
  assert_int_equal(crpc__endpoint_parse("unix:@a b", &ep), CRPC_EENDPOINT);
  /* A path's address is the path with its NUL. */
  assert_int_equal(crpc__endpoint_parse("unix:/x", &ep), 0);
  struct sockaddr_un sa;
  assert_int_equal(crpc__endpoint_sockaddr_un(&ep, &sa), offsetof(struct sockaddr_un, sun_path) + 3);
  assert_string_equal(sa.sun_path, "/x");
#else
  assert_int_equal(crpc__endpoint_parse("unix:@crpc.test", &ep), CRPC_ENOTSUP);
#endif
}

static void test_lengths(void **state) {
  (void)state;
  char s[600], want[300];
  crpc__endpoint ep;
  /* Host of exactly 255 characters, then 256. */
  memset(want, 'a', 255);
  want[255] = '\0';
  snprintf(s, sizeof s, "tcp://%s:1", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  assert_string_equal(ep.host, want);
  snprintf(s, sizeof s, "tcp://%sa:1", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), CRPC_EENDPOINT);
  /* Path of exactly CRPC__EP_PATH_MAX characters, then one more. */
  memset(want, 'p', CRPC__EP_PATH_MAX);
  want[CRPC__EP_PATH_MAX] = '\0';
  snprintf(s, sizeof s, "unix:%s", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  assert_string_equal(ep.path, want);
  snprintf(s, sizeof s, "unix://%s", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), 0);
  snprintf(s, sizeof s, "unix:%sp", want);
  assert_int_equal(crpc__endpoint_parse(s, &ep), CRPC_EENDPOINT);
}

static void test_bad(void **state) {
  (void)state;
  static const char *const bad[] = {
      "", "tcp://", "tcp://host", "tcp://host:", "tcp://:80", "tcp://host:80x", "tcp://host:x80",
      "tcp://host:65536", "tcp://host:99999", "tcp://host:123456", "tcp://host:-1",
      "tcp://host:+80", "tcp://host:8 0", "tcp://host:80 ", " tcp://host:80", "tcp://ho st:80",
      "tcp://host\t:80", "tcp://host:80\n", "tcp://host:80/", "tcp://host:80/path",
      "tcp://user@host:80", "tcp://a:b:80", "tcp://::1:80", "tcp://[::1]", "tcp://[::1]:",
      "tcp://[::1]80", "tcp://[::1:80", "tcp://::1]:80", "tcp://[]:80", "tcp://[127.0.0.1]:80",
      "tcp://[::1]:80]", "tcp://[fe80::1%eth0]:80", "tcp://[::g]:80", "tcp://[::1]x:80",
      "TCP://host:80", "http://host:80", "udp://host:80", "tcp:/host:80", "tcp:host:80",
      "host:80", "unix:", "unix://", "unix", "unix:/a b", "unix:/a\tb", "unix:/a\n",
      "unix: /a", "unix:/a\x7f",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    crpc__endpoint ep;
    memset(&ep, 0x5A, sizeof ep);
    int rc = crpc__endpoint_parse(bad[i], &ep);
    if (rc != CRPC_EENDPOINT)
      fail_msg("accepted or wrong error for \"%s\": %d", bad[i], rc);
    assert_int_equal(ep.kind, 0x5A5A5A5A); /* not written on failure */
  }
  crpc__endpoint ep;
  assert_int_equal(crpc__endpoint_parse(NULL, &ep), CRPC_EINVAL);
  assert_int_equal(crpc__endpoint_parse("tcp://h:1", NULL), CRPC_EINVAL);
}

static void test_format_sizes(void **state) {
  (void)state;
  crpc__endpoint ep;
  char small[8];
  assert_int_equal(crpc__endpoint_parse("tcp://127.0.0.1:8080", &ep), 0);
  /* snprintf-like: reports the length it needed and truncates safely. */
  assert_int_equal(crpc__endpoint_format(&ep, small, sizeof small), 20);
  assert_string_equal(small, "tcp://1");
  assert_int_equal(crpc__endpoint_format(&ep, NULL, 0), 20);
  assert_int_equal(crpc__endpoint_format(NULL, small, sizeof small), CRPC_EINVAL);
  ep.kind = 0;
  assert_int_equal(crpc__endpoint_format(&ep, small, sizeof small), CRPC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_abstract),
      cmocka_unit_test(test_format_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
