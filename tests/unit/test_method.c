/* crpc_service_find_method over a hand-written table shaped like generated ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crpc/method.h"

static const crpc_method_desc methods[] = {
    {"SayHello", "helloworld.Greeter/SayHello", NULL, NULL, 0, NULL},
    {"SayHelloAgain", "helloworld.Greeter/SayHelloAgain", NULL, NULL, 0, NULL},
    {"Chat", "helloworld.Greeter/Chat", NULL, NULL,
     CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING, NULL},
};
static const crpc_service_desc svc = {CRPC_GENERATED_ABI, "Greeter", "helloworld.Greeter",
                                      "helloworld.proto", 3, methods};

static void test_find(void **state) {
  (void)state;
  assert_ptr_equal(crpc_service_find_method(&svc, "SayHello"), &methods[0]);
  assert_ptr_equal(crpc_service_find_method(&svc, "SayHelloAgain"), &methods[1]);
  assert_ptr_equal(crpc_service_find_method(&svc, "Chat"), &methods[2]);
}

static void test_not_found(void **state) {
  (void)state;
  /* Short names only, exact and case-sensitive. */
  assert_null(crpc_service_find_method(&svc, "helloworld.Greeter/SayHello"));
  assert_null(crpc_service_find_method(&svc, "sayhello"));
  assert_null(crpc_service_find_method(&svc, "SayHell"));
  assert_null(crpc_service_find_method(&svc, ""));
  assert_null(crpc_service_find_method(&svc, NULL));
  assert_null(crpc_service_find_method(NULL, "SayHello"));
  crpc_service_desc empty = {CRPC_GENERATED_ABI, "E", "E", "e.proto", 0, NULL};
  assert_null(crpc_service_find_method(&empty, "SayHello"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find),
      cmocka_unit_test(test_not_found),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
