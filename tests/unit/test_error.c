/* Library error names and messages: every CRPC_E* code, a libuv code, 0, and unknown values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "crpc/error.h"

static void test_own_codes(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
  } want[] = {
      {CRPC_EINVAL, "CRPC_EINVAL"},     {CRPC_ENOMEM, "CRPC_ENOMEM"},
      {CRPC_EENDPOINT, "CRPC_EENDPOINT"}, {CRPC_ECLOSED, "CRPC_ECLOSED"},
      {CRPC_EEXIST, "CRPC_EEXIST"},     {CRPC_ESTATE, "CRPC_ESTATE"},
      {CRPC_ENOTSUP, "CRPC_ENOTSUP"},   {CRPC_EDEADLK, "CRPC_EDEADLK"},
      {CRPC_EABI, "CRPC_EABI"},         {CRPC_ETYPE, "CRPC_ETYPE"},
      {CRPC_ERESOLVE, "CRPC_ERESOLVE"}, {CRPC_ELIMIT, "CRPC_ELIMIT"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_true(want[i].code < 0);
    assert_string_equal(crpc_err_name(want[i].code), want[i].name);
    const char *msg = crpc_strerror(want[i].code);
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    assert_string_not_equal(msg, "unknown error");
    /* Messages are distinct, so a log line identifies the error. */
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(msg, crpc_strerror(want[j].code));
  }
  assert_string_equal(crpc_strerror(CRPC_EINVAL), "invalid argument");
}

static void test_libuv_codes(void **state) {
  (void)state;
  assert_string_equal(crpc_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  assert_string_equal(crpc_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
  assert_string_equal(crpc_err_name(UV_EOF), "EOF");
  assert_string_equal(crpc_err_name(UV_EAI_NONAME), "EAI_NONAME");
}

static void test_zero_and_unknown(void **state) {
  (void)state;
  assert_string_equal(crpc_strerror(0), "success");
  assert_string_equal(crpc_err_name(0), "OK");
  static const int unknown[] = {1, 12345, -19999, -20000, -20099, -99999, INT32_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(crpc_err_name(unknown[i]), "UNKNOWN");
    assert_string_equal(crpc_strerror(unknown[i]), "unknown error");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_own_codes),
      cmocka_unit_test(test_libuv_codes),
      cmocka_unit_test(test_zero_and_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
