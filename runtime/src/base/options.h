/* Option validation shared by channel.c and server.c: one place applies CRPC_OPTION_MAP's ranges
 * and its accepted-by column, so a channel and a server can never disagree about an option. */
#ifndef CRPC_OPTIONS_INTERNAL_H
#define CRPC_OPTIONS_INTERNAL_H

#include <stdint.h>

#include "crpc/options.h"

/* 0 when `opt` is a known option that `who` (exactly one of CRPC_OPT_CHANNEL, CRPC_OPT_SERVER)
 * accepts and `value` lies within the option's [min, max]; CRPC_EINVAL otherwise. */
int crpc__option_check(crpc_option opt, int64_t value, int who);

/* Fills values[] with every option's default, indexed by crpc_option. */
void crpc__options_defaults(int64_t values[CRPC_OPT_COUNT_]);

#endif
