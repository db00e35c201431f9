/* The call core: state transitions and the one lifetime rule. See call/core.h. */
#include "call/core.h"

#include "crpc/error.h"

int crpc__core_open(crpc__core *core, crpc__conn *conn, uint32_t id) {
  if (crpc__conn_track(conn, id, &core->cc) != 0) return CRPC_ENOMEM;
  core->conn = conn;
  core->id = id;
  crpc__core_set_state(core, CRPC__CALL_OPEN);
  return 0;
}

int crpc__core_unref(crpc__core *core) {
  assert(core->refs > 0);
  if (--core->refs) return 0;
  core->kind->release(core);
  return 1;
}
