/* Runtime version functions agree with the macros in crpc/version.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "crpc/crpc.h"

static void test_version(void **state) {
  (void)state;
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", CRPC_VERSION_MAJOR, CRPC_VERSION_MINOR,
           CRPC_VERSION_PATCH);
  assert_string_equal(crpc_version_string(), want);
  assert_int_equal(crpc_version(), CRPC_VERSION_HEX);
  assert_int_equal(crpc_version() >> 16, CRPC_VERSION_MAJOR);
  assert_int_equal((crpc_version() >> 8) & 0xff, CRPC_VERSION_MINOR);
  assert_int_equal(crpc_version() & 0xff, CRPC_VERSION_PATCH);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_version)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
