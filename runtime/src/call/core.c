/* The call core: putting a call on a connection. The rest is inline in call/core.h. */
#include "call/core.h"

#include "crpc/error.h"

int crpc__core_open(crpc__core *core, crpc__conn *conn, uint32_t id) {
  if (crpc__conn_track(conn, id, &core->cc) != 0) return CRPC_ENOMEM;
  core->conn = conn;
  core->id = id;
  crpc__core_set_state(core, CRPC__CALL_OPEN);
  return 0;
}
