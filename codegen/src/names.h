/* C identifiers from protobuf names, by protobuf-c's rules (re-implemented here so that crpc's
 * names sit next to protobuf-c's and agree with them):
 *
 *   camel_to_lower  "SayHello" -> "say_hello", "HTTPGet" -> "httpget", "In_ner" -> "in_ner"
 *                   (an upper-case letter after a non-upper-case character gets a '_' before it;
 *                   everything is lowered)
 *   camel_to_upper  the same, upper-cased: "SayHello" -> "SAY_HELLO"
 *   to_camel        "hello_world" -> "HelloWorld" (underscores dropped, the next letter raised)
 *   full_to_lower   each dotted piece by camel_to_lower, joined with "__":
 *                   "a.b_c.HelloRequest" -> "a__b_c__hello_request"
 *   full_to_upper   the same with camel_to_upper: "A__B_C__HELLO_REQUEST"
 *   full_to_c       each piece by to_camel, joined with "__": "A__BC__HelloRequest"
 *
 * A leading '.' (a fully-qualified type name from a descriptor) and empty pieces are ignored.
 * All functions allocate the result in the arena and return NULL when out of memory. */
#ifndef CRPC_GEN_NAMES_H
#define CRPC_GEN_NAMES_H

#include "arena.h"

char *names_camel_to_lower(arena *a, const char *s);
char *names_camel_to_upper(arena *a, const char *s);
char *names_to_camel(arena *a, const char *s);
char *names_full_to_lower(arena *a, const char *full_name);
char *names_full_to_upper(arena *a, const char *full_name);
char *names_full_to_c(arena *a, const char *full_name);

/* Concatenates up to four strings; trailing arguments may be NULL. A NULL followed by a
 * non-NULL argument (a failed allocation upstream) gives NULL. */
char *names_cat(arena *a, const char *s1, const char *s2, const char *s3, const char *s4);

/* An identifier made from a file name: letters and digits kept, every other byte as '_' and two
 * hex digits ("dir/x.proto" -> "dir_2fx_2eproto"). Distinct names give distinct identifiers. */
char *names_file_ident(arena *a, const char *file_name);

/* Non-zero when s is a protobuf identifier: [A-Za-z_][A-Za-z0-9_]* */
int names_is_ident(const char *s);

/* Non-zero when s is one or more identifiers separated by single dots, optionally with one
 * leading dot (".pkg.Msg"). The empty string qualifies only when allow_empty is set. */
int names_is_dotted(const char *s, int allow_empty);

/* Non-zero when s is a C11 keyword or a standard macro (bool, static_assert, ...) that cannot
 * name a struct member. */
int names_is_keyword(const char *s);

#endif
