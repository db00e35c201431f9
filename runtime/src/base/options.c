/* The option table (crpc/options.h) as data: one row per option, built from CRPC_OPTION_MAP. */
#include "base/options.h"

#include <stddef.h>

#include "crpc/error.h"

typedef struct option_row {
  const char *name;
  int64_t def, min, max;
  int who;
} option_row;

static const option_row rows[CRPC_OPT_COUNT_] = {
#define CRPC_OPTION_ROW_(name, def, lo, hi, who) {#name, (def), (lo), (hi), (who)},
    CRPC_OPTION_MAP(CRPC_OPTION_ROW_)
#undef CRPC_OPTION_ROW_
};

/* The enum may hold any int a caller casts into it. */
static const option_row *row(crpc_option opt) {
  int i = (int)opt;
  return i >= 0 && i < CRPC_OPT_COUNT_ ? &rows[i] : NULL;
}

const char *crpc_option_name(crpc_option opt) {
  const option_row *r = row(opt);
  return r ? r->name : NULL;
}

int64_t crpc_option_default(crpc_option opt) {
  const option_row *r = row(opt);
  return r ? r->def : -1;
}

int crpc__option_check(crpc_option opt, int64_t value, int who) {
  const option_row *r = row(opt);
  if (r == NULL || (who != CRPC_OPT_CHANNEL && who != CRPC_OPT_SERVER))
    return CRPC_EINVAL;
  if (!(r->who & who) || value < r->min || value > r->max)
    return CRPC_EINVAL;
  return 0;
}

void crpc__options_defaults(int64_t values[CRPC_OPT_COUNT_]) {
  for (int i = 0; i < CRPC_OPT_COUNT_; i++)
    values[i] = rows[i].def;
}
