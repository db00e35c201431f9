/* The option table: names, defaults, ranges and who accepts what. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crpc/error.h"
#include "base/options.h"

#define C CRPC_OPT_CHANNEL
#define S CRPC_OPT_SERVER

static const struct {
  crpc_option opt;
  const char *name;
  int64_t def, min, max;
  int who;
} want[] = {
    {CRPC_OPT_MAX_RECV_MESSAGE_SIZE, "MAX_RECV_MESSAGE_SIZE", 4194304, 0, 2147483647, C | S},
    {CRPC_OPT_MAX_SEND_MESSAGE_SIZE, "MAX_SEND_MESSAGE_SIZE", 4194304, 0, 2147483647, C | S},
    {CRPC_OPT_CONNECT_TIMEOUT_MS, "CONNECT_TIMEOUT_MS", 20000, 1, 86400000, C},
    {CRPC_OPT_BACKOFF_INITIAL_MS, "BACKOFF_INITIAL_MS", 100, 1, 86400000, C},
    {CRPC_OPT_BACKOFF_MAX_MS, "BACKOFF_MAX_MS", 5000, 1, 86400000, C},
    {CRPC_OPT_DEFAULT_TIMEOUT_MS, "DEFAULT_TIMEOUT_MS", 0, 0, 86400000, C},
    {CRPC_OPT_MAX_CALLS_PER_CONN, "MAX_CALLS_PER_CONN", 4096, 1, 1048576, C | S},
    {CRPC_OPT_MAX_CONNECTIONS, "MAX_CONNECTIONS", 10000, 1, 1048576, S},
    {CRPC_OPT_MAX_METADATA_SIZE, "MAX_METADATA_SIZE", 8192, 0, 16777216, C | S},
    {CRPC_OPT_MAX_NESTING_DEPTH, "MAX_NESTING_DEPTH", 64, 1, 1024, C | S},
    {CRPC_OPT_MAX_DECODE_RATIO, "MAX_DECODE_RATIO", 16, 1, 1024, C | S},
    {CRPC_OPT_HANDSHAKE_TIMEOUT_MS, "HANDSHAKE_TIMEOUT_MS", 10000, 1, 86400000, S},
    {CRPC_OPT_IDLE_TIMEOUT_MS, "IDLE_TIMEOUT_MS", 300000, 0, 86400000, S},
    {CRPC_OPT_STALL_TIMEOUT_MS, "STALL_TIMEOUT_MS", 20000, 1, 86400000, S},
    {CRPC_OPT_MAX_WRITE_BUFFER, "MAX_WRITE_BUFFER", 16777216, 65536, 2147483647, C | S},
    {CRPC_OPT_KEEPALIVE_TIME_MS, "KEEPALIVE_TIME_MS", 0, 0, 86400000, C},
    {CRPC_OPT_KEEPALIVE_TIMEOUT_MS, "KEEPALIVE_TIMEOUT_MS", 20000, 1, 86400000, C},
    {CRPC_OPT_MIN_PING_INTERVAL_MS, "MIN_PING_INTERVAL_MS", 1000, 0, 86400000, S},
    {CRPC_OPT_STREAM_WINDOW, "STREAM_WINDOW", 65536, 65536, 1073741824, C | S},
    {CRPC_OPT_LOOPS, "LOOPS", 1, 1, 64, S},
    {CRPC_OPT_UNIX_SOCKET_MODE, "UNIX_SOCKET_MODE", 0, 0, 0777, S},
};

static void test_names_defaults(void **state) {
  (void)state;
  assert_int_equal(CRPC_OPT_COUNT_, sizeof want / sizeof want[0]);
  int64_t defs[CRPC_OPT_COUNT_];
  crpc__options_defaults(defs);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_string_equal(crpc_option_name(want[i].opt), want[i].name);
    assert_int_equal(crpc_option_default(want[i].opt), want[i].def);
    assert_int_equal(defs[want[i].opt], want[i].def);
  }
  assert_null(crpc_option_name(CRPC_OPT_COUNT_));
  assert_null(crpc_option_name((crpc_option)-1));
  assert_int_equal(crpc_option_default(CRPC_OPT_COUNT_), -1);
  assert_int_equal(crpc_option_default((crpc_option)-1), -1);
}

static void test_check(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    for (int who = C; who <= S; who++) {
      int ok = (want[i].who & who) ? 0 : CRPC_EINVAL;
      assert_int_equal(crpc__option_check(want[i].opt, want[i].def, who), ok);
      assert_int_equal(crpc__option_check(want[i].opt, want[i].min, who), ok);
      assert_int_equal(crpc__option_check(want[i].opt, want[i].max, who), ok);
      assert_int_equal(crpc__option_check(want[i].opt, want[i].min - 1, who), CRPC_EINVAL);
      assert_int_equal(crpc__option_check(want[i].opt, want[i].max + 1, who), CRPC_EINVAL);
      assert_int_equal(crpc__option_check(want[i].opt, INT64_MIN, who), CRPC_EINVAL);
      assert_int_equal(crpc__option_check(want[i].opt, INT64_MAX, who), CRPC_EINVAL);
    }
    /* `who` names exactly one kind of object. */
    assert_int_equal(crpc__option_check(want[i].opt, want[i].def, 0), CRPC_EINVAL);
    assert_int_equal(crpc__option_check(want[i].opt, want[i].def, C | S), CRPC_EINVAL);
    assert_int_equal(crpc__option_check(want[i].opt, want[i].def, 4), CRPC_EINVAL);
  }
  assert_int_equal(crpc__option_check(CRPC_OPT_COUNT_, 0, C), CRPC_EINVAL);
  assert_int_equal(crpc__option_check((crpc_option)-1, 0, C), CRPC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_defaults),
      cmocka_unit_test(test_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
