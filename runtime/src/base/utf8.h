/* UTF-8 for status texts (PROTOCOL.md §6.4): repairing text that is not UTF-8, and quoting
 * bytes a peer sent (method names) so that they can be echoed in a text. */
#ifndef CRPC_UTF8_H
#define CRPC_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when none starts there; *bad
 * receives the length of the maximal ill-formed subpart (Unicode §3.9, "U+FFFD substitution of
 * maximal subparts"): at least 1, what one U+FFFD replaces. */
size_t crpc__utf8_seq(const uint8_t *p, size_t n, size_t *bad);

/* Repairs n bytes of text into out (out_cap bytes; NULL/0 to measure): every maximal ill-formed
 * subpart, and every NUL byte (the API hands texts out as C strings), becomes U+FFFD
 * (EF BF BD); the rest is copied as is. Stops before a character that would take the output
 * past max bytes (or out_cap), so a cut never splits a character. Returns the output length
 * (no terminator is written). */
size_t crpc__utf8_repair(const char *text, size_t n, char *out, size_t out_cap, size_t max);

/* Quotes n bytes sent by a peer for a status text: bytes 0x20..0x7e other than backslash are
 * copied, every other byte is written as \xHH (lower-case hex). At most 4n bytes plus a NUL are
 * written to out (out_cap must be at least 4n + 1); returns the length. */
size_t crpc__quote_bytes(const char *p, size_t n, char *out, size_t out_cap);

#endif
