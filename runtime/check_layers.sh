#!/usr/bin/env bash
# Checks that libcrpc's layers depend one way, from the #include lines of runtime/src, and prints
# the graph between layers. Anyone can run it; the test suite does (test `layers_include_graph`).
#
#   runtime/check_layers.sh [--quiet]
#
# Layers, bottom to top (runtime/README.md says what each holds):
#   base < wire < transport < conn < call < client, server
# A file may include headers of its own layer and of layers below it; client and server never
# include each other. Below client and server, no file includes the public headers that belong
# to them (crpc/channel.h, crpc/stream.h, crpc/server.h). Every source file must sit in a layer
# folder. Exit status 0 when every rule holds, 1 otherwise (each breach is printed).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/src
quiet=0
[[ ${1:-} == --quiet ]] && quiet=1

declare -A rank=([base]=0 [wire]=1 [transport]=2 [conn]=3 [call]=4 [client]=5 [server]=5)
upper_public='crpc/(channel|stream|server)\.h'

bad=0
declare -A edges=()
while IFS= read -r -d '' file; do
  rel=${file#"$src"/}
  layer=${rel%%/*}
  if [[ $rel != */* || -z ${rank[$layer]+x} ]]; then
    echo "check_layers: $rel is not in a layer folder (${!rank[*]})"
    bad=1
    continue
  fi
  while IFS= read -r line; do
    [[ $line =~ \"([^\"]+)\" ]] && inc=${BASH_REMATCH[1]}
    target=${inc%%/*}
    if [[ $inc == crpc/* ]]; then
      if ((rank[$layer] < 5)) && [[ $inc =~ ^$upper_public$ ]]; then
        echo "check_layers: $rel includes $inc, a header of the client or server layer"
        bad=1
      fi
      continue
    fi
    if [[ $inc != */* || -z ${rank[$target]+x} ]]; then
      echo "check_layers: $rel includes \"$inc\": name headers by layer (\"conn/conn.h\")"
      bad=1
      continue
    fi
    [[ $target == "$layer" ]] && continue
    edges["$layer -> $target"]=$((${edges["$layer -> $target"]:-0} + 1))
    if ((rank[$target] > rank[$layer])); then
      echo "check_layers: $rel includes $inc: $layer may not depend on $target (a layer above it)"
      bad=1
    elif ((rank[$target] == rank[$layer])); then
      echo "check_layers: $rel includes $inc: $layer and $target stand side by side and never include each other"
      bad=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
done < <(find "$src" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

if ((!quiet)); then
  echo "layer graph of runtime/src (includes between layers, by count):"
  for e in "${!edges[@]}"; do printf '  %-22s %3d\n' "$e" "${edges[$e]}"; done | sort
fi
if ((bad)); then
  echo "check_layers: FAILED"
  exit 1
fi
((quiet)) || echo "check_layers: every include points down a layer; no cycle"
