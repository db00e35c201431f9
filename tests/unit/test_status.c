/* Status code names, both directions, from the one table in crpc/status.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crpc/error.h"
#include "crpc/status.h"

/* Written out by hand on purpose: the test must not share the table it checks. */
static const char *const names[CRPC_CODE_COUNT] = {
    "OK",           "CANCELLED",          "UNKNOWN",       "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",   "DATA_LOSS",
    "UNAUTHENTICATED"};

static void test_names(void **state) {
  (void)state;
  for (int i = 0; i < CRPC_CODE_COUNT; i++) {
    assert_string_equal(crpc_code_name((crpc_code)i), names[i]);
    crpc_code c = (crpc_code)-1;
    assert_int_equal(crpc_code_from_name(names[i], &c), 0);
    assert_int_equal(c, i);
  }
  assert_int_equal(CRPC_STATUS_UNAUTHENTICATED, 16);
  assert_int_equal(CRPC_STATUS_UNIMPLEMENTED, 12);
}

static void test_unknown(void **state) {
  (void)state;
  assert_string_equal(crpc_code_name((crpc_code)17), "UNKNOWN");
  assert_string_equal(crpc_code_name((crpc_code)-1), "UNKNOWN");
  assert_string_equal(crpc_code_name((crpc_code)1000), "UNKNOWN");
  crpc_code c = CRPC_STATUS_ABORTED;
  assert_int_equal(crpc_code_from_name("ok", &c), CRPC_EINVAL);
  assert_int_equal(crpc_code_from_name("", &c), CRPC_EINVAL);
  assert_int_equal(crpc_code_from_name("OK ", &c), CRPC_EINVAL);
  assert_int_equal(crpc_code_from_name("CANCELLE", &c), CRPC_EINVAL);
  assert_int_equal(crpc_code_from_name(NULL, &c), CRPC_EINVAL);
  assert_int_equal(crpc_code_from_name("OK", NULL), CRPC_EINVAL);
  assert_int_equal(c, CRPC_STATUS_ABORTED); /* untouched on failure */
}

static void test_reset(void **state) {
  (void)state;
  crpc_status s = {.code = CRPC_STATUS_INTERNAL, .message = malloc(8)};
  strcpy(s.message, "broken");
  crpc_status_reset(&s);
  assert_int_equal(s.code, CRPC_STATUS_OK);
  assert_null(s.message);
  crpc_status_reset(&s); /* twice */
  crpc_status z = {0};
  crpc_status_reset(&z);
  crpc_status_reset(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_unknown),
      cmocka_unit_test(test_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
