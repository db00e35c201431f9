/* The tables and declarations protoc-gen-crpc generated for tests/codegen/protos: names, full
 * names, descriptors, flags, method counts, ABI, and the C names of the typed functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cases.crpc.h"
#include "common/types.crpc.h"
#include "deep/dotted.crpc.h"
#include "empty_service.crpc.h"
#include "nopkg.crpc.h"

#ifndef CRPC_GENERATED_common_2ftypes_2eproto_CRPC_H
#error "include guard of common/types.crpc.h not derived from its path"
#endif

/* The __METHOD macros are address constants: they initialise statics. */
static const crpc_method_desc *const static_say = ECHO__SAY__METHOD;
static const crpc_method_desc *const static_first[] = {
    A__B__C__D__FIRST__LOOKUP__METHOD, A__B__C__D__FIRST__PING__METHOD,
    A__B__C__D__FIRST__UPLOAD__METHOD, A__B__C__D__FIRST__WATCH__METHOD,
    A__B__C__D__FIRST__CHAT__METHOD};

static void check_method(const crpc_method_desc *m, const char *name, const char *full_name,
                         const ProtobufCMessageDescriptor *in,
                         const ProtobufCMessageDescriptor *out, unsigned flags)
{
  assert_string_equal(m->name, name);
  assert_string_equal(m->full_name, full_name);
  assert_ptr_equal(m->input, in);
  assert_ptr_equal(m->output, out);
  assert_int_equal(m->flags, flags);
  assert_non_null(m->dispatch); /* streaming methods have a trampoline too */
}

static void check_service(const crpc_service_desc *s, const char *name, const char *full_name,
                          const char *proto_file, size_t n_methods)
{
  assert_int_equal(s->abi, CRPC_GENERATED_ABI);
  assert_string_equal(s->name, name);
  assert_string_equal(s->full_name, full_name);
  assert_string_equal(s->proto_file, proto_file);
  assert_int_equal(s->n_methods, n_methods);
}

static void no_package(void **state)
{
  const crpc_service_desc *s = &echo__crpc_service;
  int (*call)(crpc_channel *, const EchoRequest *, EchoReply **, crpc_status *,
              const crpc_call_opts *) = echo__say__call;
  int (*start)(crpc_channel *, const EchoRequest *, const crpc_call_opts *, Echo__SayDone, void *,
               crpc_call **) = echo__say__start;
  int (*reply)(crpc_server_call *, const EchoReply *) = echo__say__reply;
  int (*reg)(crpc_server *, const Echo__Handlers *, void *) = echo__crpc_register;
  Echo__Handlers h = {NULL, NULL, NULL};

  (void)state;
  check_service(s, "Echo", "Echo", "nopkg.proto", 3);
  check_method(ECHO__SAY__METHOD, "Say", "Echo/Say", &echo_request__descriptor,
               &echo_reply__descriptor, 0);
  check_method(ECHO__TWICE__METHOD, "Twice", "Echo/Twice", &outer__inner__descriptor,
               &outer__inner__descriptor, 0);
  check_method(ECHO__UNIMPL__METHOD, "Unimpl", "Echo/Unimpl", &echo_request__descriptor,
               &echo_reply__descriptor, 0);
  assert_ptr_equal(ECHO__SAY__METHOD, &s->methods[0]);
  assert_ptr_equal(static_say, &s->methods[0]);
  assert_ptr_equal(ECHO__UNIMPL__METHOD, &s->methods[2]);
  assert_ptr_equal(crpc_service_find_method(s, "Twice"), ECHO__TWICE__METHOD);
  assert_non_null(call);
  assert_non_null(start);
  assert_non_null(reply);
  assert_non_null(reg);
  assert_null(h.say);
  assert_null(h.twice);
  assert_null(h.unimpl);
  /* Nested type as a parameter: the handler takes Outer__Inner. */
  {
    void (*twice)(crpc_server_call *, const Outer__Inner *, void *) = h.twice;
    int (*tcall)(crpc_channel *, const Outer__Inner *, Outer__Inner **, crpc_status *,
                 const crpc_call_opts *) = echo__twice__call;

    assert_null(twice);
    assert_non_null(tcall);
  }
}

static void dotted_package(void **state)
{
  const crpc_service_desc *s = &a__b__c__d__first__crpc_service;
  int (*lookup)(crpc_channel *, const Common__Types__Holder__InnerMsg *,
                Common__Types__MyThing **, crpc_status *, const crpc_call_opts *) =
      a__b__c__d__first__lookup__call;
  int (*ping)(crpc_channel *, const Google__Protobuf__Empty *, const crpc_call_opts *,
              A__B__C__D__First__PingDone, void *, crpc_call **) = a__b__c__d__first__ping__start;
  A__B__C__D__First__Handlers h = {NULL, NULL, NULL, NULL, NULL};

  (void)state;
  check_service(s, "First", "a.b.c.d.First", "deep/dotted.proto", 5);
  check_method(A__B__C__D__FIRST__LOOKUP__METHOD, "Lookup", "a.b.c.d.First/Lookup",
               &common__types__holder__inner__msg__descriptor, &common__types__my__thing__descriptor,
               0);
  check_method(A__B__C__D__FIRST__PING__METHOD, "Ping", "a.b.c.d.First/Ping",
               &google__protobuf__empty__descriptor, &google__protobuf__empty__descriptor, 0);
  check_method(A__B__C__D__FIRST__UPLOAD__METHOD, "Upload", "a.b.c.d.First/Upload",
               &a__b__c__d__local__descriptor, &a__b__c__d__local__descriptor,
               CRPC_METHOD_CLIENT_STREAMING);
  check_method(A__B__C__D__FIRST__WATCH__METHOD, "Watch", "a.b.c.d.First/Watch",
               &a__b__c__d__local__descriptor, &a__b__c__d__local__descriptor,
               CRPC_METHOD_SERVER_STREAMING);
  check_method(A__B__C__D__FIRST__CHAT__METHOD, "Chat", "a.b.c.d.First/Chat",
               &a__b__c__d__local__descriptor, &a__b__c__d__local__descriptor,
               CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING);
  assert_ptr_equal(A__B__C__D__FIRST__CHAT__METHOD, &s->methods[4]);
  for (size_t i = 0; i < 5; i++)
    assert_ptr_equal(static_first[i], &s->methods[i]);
  /* Every method has a handler, in .proto order. */
  assert_int_equal(sizeof(h), 5 * sizeof(h.lookup));
  assert_non_null(lookup);
  assert_non_null(ping);
}

/* The typed streaming stubs of each kind: the signatures are pinned by assigning each function
 * to a pointer of the documented type (a mismatch does not compile under -Werror). */
typedef void (*server_reader)(crpc_server_call *, const A__B__C__D__Local *, void *);

static void streaming_server_side(void **state)
{
  A__B__C__D__First__Handlers h = {0};
  void (*upload)(crpc_server_call *, void *) = h.upload;
  void (*watch)(crpc_server_call *, const A__B__C__D__Local *, void *) = h.watch;
  void (*chat)(crpc_server_call *, void *) = h.chat;
  int (*send[])(crpc_server_call *, const A__B__C__D__Local *) = {
      a__b__c__d__first__upload__server_write, a__b__c__d__first__watch__server_write,
      a__b__c__d__first__chat__server_write, a__b__c__d__only_streams__feed__server_write,
      /* the deprecated old names, same signatures */
      a__b__c__d__first__upload__send, a__b__c__d__first__watch__send,
      a__b__c__d__first__chat__send, a__b__c__d__only_streams__feed__send};
  int (*set_reader[])(crpc_server_call *, server_reader, crpc_server_writable_cb, void *, int) = {
      a__b__c__d__first__upload__set_reader, a__b__c__d__first__chat__set_reader,
      a__b__c__d__only_streams__feed__set_reader};
  A__B__C__D__OnlyStreams__Handlers only = {NULL};
  void (*feed)(crpc_server_call *, void *) = only.feed;

  (void)state;
  assert_null(upload);
  assert_null(watch);
  assert_null(chat);
  assert_null(feed);
  for (size_t i = 0; i < sizeof(send) / sizeof(send[0]); i++)
    assert_non_null(send[i]);
  for (size_t i = 0; i < sizeof(set_reader) / sizeof(set_reader[0]); i++)
    assert_non_null(set_reader[i]);
}

static void streaming_client_side(void **state)
{
  A__B__C__D__First__ChatHandlers ch = {NULL, NULL, NULL, 1};
  void (*on_read)(crpc_stream *, const A__B__C__D__Local *, void *) = ch.on_read;
  void (*on_writable)(crpc_stream *, void *) = ch.on_writable;
  void (*on_done)(crpc_stream *, const crpc_status *, void *) = ch.on_done;
  int (*upload)(crpc_channel *, const crpc_call_opts *, const A__B__C__D__First__UploadHandlers *,
                void *, crpc_stream **) = a__b__c__d__first__upload__stream;
  int (*watch)(crpc_channel *, const crpc_call_opts *, const A__B__C__D__First__WatchHandlers *,
               void *, crpc_stream **) = a__b__c__d__first__watch__stream;
  int (*chat)(crpc_channel *, const crpc_call_opts *, const A__B__C__D__First__ChatHandlers *,
              void *, crpc_stream **) = a__b__c__d__first__chat__stream;
  int (*write[])(crpc_stream *, const A__B__C__D__Local *) = {
      a__b__c__d__first__upload__write, a__b__c__d__first__watch__write,
      a__b__c__d__first__chat__write, a__b__c__d__first__chat__send_wait,
      a__b__c__d__first__watch__send_wait, a__b__c__d__first__upload__send_wait,
      a__b__c__d__first__chat__write_wait, a__b__c__d__first__watch__write_wait,
      a__b__c__d__first__upload__write_wait};
  int (*open[])(crpc_channel *, const crpc_call_opts *, crpc_stream **) = {
      a__b__c__d__first__upload__open, a__b__c__d__first__watch__open,
      a__b__c__d__first__chat__open};
  int (*read[])(crpc_stream *, A__B__C__D__Local **) = {
      a__b__c__d__first__upload__recv_wait, a__b__c__d__first__watch__recv_wait,
      a__b__c__d__first__chat__recv_wait, a__b__c__d__first__upload__read_wait,
      a__b__c__d__first__watch__read_wait, a__b__c__d__first__chat__read_wait};
  int (*finish[])(crpc_stream *, crpc_status *) = {
      a__b__c__d__first__upload__finish_wait, a__b__c__d__first__watch__finish_wait,
      a__b__c__d__first__chat__finish_wait, a__b__c__d__first__upload__finish,
      a__b__c__d__first__watch__finish, a__b__c__d__first__chat__finish};
  A__B__C__D__First__UploadHandlers uh = {NULL, NULL, NULL, 0};
  A__B__C__D__First__WatchHandlers wh = {NULL, NULL, NULL, 0};

  (void)state;
  assert_null(on_read);
  assert_null(on_writable);
  assert_null(on_done);
  assert_int_equal(ch.auto_read, 1);
  assert_int_equal(sizeof(uh), sizeof(wh));
  assert_non_null(upload);
  assert_non_null(watch);
  assert_non_null(chat);
  for (size_t i = 0; i < 6; i++)
    assert_non_null(write[i]);
  for (size_t i = 0; i < 3; i++) {
    assert_non_null(open[i]);
    assert_non_null(read[i]);
    assert_non_null(finish[i]);
  }
}

/* The stubs check what the runtime cannot see through them: no handler table, no on_done. */
static void streaming_stub_arguments(void **state)
{
  static const A__B__C__D__First__ChatHandlers no_done = {NULL, NULL, NULL, 0};
  crpc_stream *s = (crpc_stream *)&s;
  A__B__C__D__Local *msg = (A__B__C__D__Local *)&msg;

  (void)state;
  assert_int_equal(a__b__c__d__first__chat__stream(NULL, NULL, NULL, NULL, &s), CRPC_EINVAL);
  assert_null(s);
  s = (crpc_stream *)&s;
  assert_int_equal(a__b__c__d__first__chat__stream(NULL, NULL, &no_done, NULL, &s), CRPC_EINVAL);
  assert_null(s);
  assert_int_equal(a__b__c__d__first__chat__stream(NULL, NULL, &no_done, NULL, NULL),
                   CRPC_EINVAL);
  assert_int_equal(a__b__c__d__first__chat__recv_wait(NULL, NULL), CRPC_EINVAL);
  assert_int_equal(a__b__c__d__first__chat__recv_wait(NULL, &msg), CRPC_EINVAL);
  assert_null(msg);
}

static void several_services(void **state)
{
  const crpc_service_desc *second = &a__b__c__d__second__crpc_service;
  const crpc_service_desc *streams = &a__b__c__d__only_streams__crpc_service;
  A__B__C__D__OnlyStreams__Handlers none = {NULL};

  (void)state;
  check_service(second, "Second", "a.b.c.d.Second", "deep/dotted.proto", 1);
  check_method(A__B__C__D__SECOND__GET__METHOD, "Get", "a.b.c.d.Second/Get",
               &a__b__c__d__local__descriptor, &common__types__my__thing__descriptor, 0);
  check_service(streams, "OnlyStreams", "a.b.c.d.OnlyStreams", "deep/dotted.proto", 1);
  check_method(A__B__C__D__ONLY_STREAMS__FEED__METHOD, "Feed", "a.b.c.d.OnlyStreams/Feed",
               &a__b__c__d__local__descriptor, &a__b__c__d__local__descriptor,
               CRPC_METHOD_CLIENT_STREAMING | CRPC_METHOD_SERVER_STREAMING);
  assert_null(none.feed);
  assert_int_equal(sizeof(none), sizeof(none.feed));
  assert_non_null(a__b__c__d__only_streams__crpc_register);
}

static void service_without_methods(void **state)
{
  const crpc_service_desc *s = &quiet__nothing__crpc_service;
  int (*reg)(crpc_server *, const Quiet__Nothing__Handlers *, void *) =
      quiet__nothing__crpc_register;
  Quiet__Nothing__Handlers h = {0};

  (void)state;
  check_service(s, "Nothing", "quiet.Nothing", "empty_service.proto", 0);
  assert_null(s->methods);
  assert_null(crpc_service_find_method(s, "Anything"));
  assert_int_equal(sizeof(h), sizeof(char));
  assert_non_null(reg);
}

static void names_differing_in_case(void **state)
{
  /* protobuf-c's own function for rpc CrpcService keeps its name; crpc's table moves aside. */
  void (*pbc)(ProtobufCService *, const Cases__Msg *, Cases__Msg_Closure, void *) =
      cases__tricky__crpc_service;
  const crpc_service_desc *s = &cases__tricky__crpc_service_;
  Cases__Tricky__GetItemDone d1 = NULL;
  Cases__Tricky__GetItemDone_ d2 = NULL;
  Cases__Tricky__GetitemDone d3 = NULL;
  Cases__Tricky__Handlers h = {NULL, NULL, NULL, NULL, NULL};
  int (*c1)(crpc_channel *, const Cases__Msg *, const crpc_call_opts *, Cases__Tricky__GetItemDone,
            void *, crpc_call **) = cases__tricky__get_item__start;
  int (*c2)(crpc_channel *, const Cases__Msg *, const crpc_call_opts *,
            Cases__Tricky__GetItemDone_, void *, crpc_call **) = cases__tricky__get__item__start;

  (void)state;
  assert_non_null(pbc);
  check_service(s, "Tricky", "cases.Tricky", "cases.proto", 5);
  check_method(CASES__TRICKY__GET_ITEM__METHOD, "GetItem", "cases.Tricky/GetItem",
               &cases__msg__descriptor, &cases__msg__descriptor, 0);
  check_method(CASES__TRICKY__GET__ITEM__METHOD, "Get_Item", "cases.Tricky/Get_Item",
               &cases__msg__descriptor, &cases__msg__descriptor, 0);
  check_method(CASES__TRICKY__GETITEM__METHOD, "getitem", "cases.Tricky/getitem",
               &cases__msg__descriptor, &cases__msg__descriptor, 0);
  check_method(CASES__TRICKY__CRPC_SERVICE__METHOD, "CrpcService", "cases.Tricky/CrpcService",
               &cases__msg__descriptor, &cases__msg__descriptor, 0);
  check_method(CASES__TRICKY__DELETE__METHOD, "Delete", "cases.Tricky/Delete",
               &cases__msg__descriptor, &cases__msg__descriptor, 0);
  assert_null(d1);
  assert_null(d2);
  assert_null(d3);
  assert_null(h.get_item);
  assert_null(h.get__item);
  assert_null(h.getitem);
  assert_null(h.crpc_service);
  assert_null(h.delete);
  assert_non_null(c1);
  assert_non_null(c2);
  assert_non_null(cases__tricky__getitem__call);
  assert_non_null(cases__tricky__crpc_service__call);
  assert_non_null(cases__tricky__delete__reply);
  assert_non_null(cases__tricky__crpc_register);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_package),
      cmocka_unit_test(dotted_package),
      cmocka_unit_test(streaming_server_side),
      cmocka_unit_test(streaming_client_side),
      cmocka_unit_test(streaming_stub_arguments),
      cmocka_unit_test(several_services),
      cmocka_unit_test(service_without_methods),
      cmocka_unit_test(names_differing_in_case),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
