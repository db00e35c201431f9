#!/bin/sh
# Regenerates the seed files (seed-*) of every corpus in tests/fuzz/corpus/. Other files there
# (findings, minimized inputs kept by hand) are left alone. Needs a C compiler and protoc.
#   tests/fuzz/seeds/make_corpus.sh
set -eu
fuzz=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$fuzz/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

for t in frame_decoder server_conn client_conn plugin; do
  mkdir -p "$fuzz/corpus/$t"
  rm -f "$fuzz/corpus/$t"/seed-*
done

# Frames and connections: built with the codec's own encoders.
${CC:-cc} -std=c11 -O1 -I"$root/runtime/src" "$fuzz/seeds/gen_seeds.c" "$root/runtime/src/wire/frame.c" \
  -o "$tmp/gen_seeds"
"$tmp/gen_seeds" "$fuzz/corpus"

# Plugin: real CodeGeneratorRequests, captured from protoc by a plugin that saves its stdin (and
# answers with an empty CodeGeneratorResponse, zero bytes).
cat > "$tmp/protoc-gen-dump" <<'DUMP'
#!/bin/sh
cat > "$CRPC_DUMP"
DUMP
chmod +x "$tmp/protoc-gen-dump"
wkt=/usr/include
dump() { # name include-dir proto [parameter]
  CRPC_DUMP="$fuzz/corpus/plugin/seed-$1" protoc -I"$2" -I"$wkt" \
    --plugin=protoc-gen-dump="$tmp/protoc-gen-dump" --dump_out="${4:+$4:}$tmp" "$2/$3"
}
dump fuzz_target "$fuzz/proto" fuzz_target.proto
dump greeter "$root/examples/greeter" greeter.proto
dump nopkg "$root/tests/codegen/protos" nopkg.proto
dump cases "$root/tests/codegen/protos" cases.proto opt=1
dump dotted "$root/tests/codegen/protos" deep/dotted.proto
dump empty_service "$root/tests/codegen/protos" empty_service.proto
dump types "$root/tests/codegen/protos" common/types.proto
dump collide "$root/tests/codegen/bad" collide.proto
dump keyword "$root/tests/codegen/bad" keyword.proto
echo "seeds written to $fuzz/corpus"
