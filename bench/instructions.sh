#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a figure that does not move
# with the machine's load, for changes too small for bench/ab.sh to see through the noise.
#
#   bench/instructions.sh [GRAPHTAPE-BINARY] [N]   (default: this checkout's release
#                                                   build, N = 2000)
#
# Runs the plain proxy (benches/plain_proxy.rs, graphtape's HTTP stack recording
# nothing) and then `graphtape record` under callgrind, each twice: 500 and 500 + N
# sequential keep-alive POSTs (the API hop's 510-byte invite body, through an nginx
# upstream on 127.0.0.1). The difference over N is the cost of one request, start-up
# and shutdown cancelled out; user-space instructions only (the kernel's share is not
# counted), every thread of the process. With one request at a time the writer commits
# small groups, so its share is larger than under load. Then the functions graphtape
# spends most in, per request (callgrind_annotate, inclusive). About 3 minutes.
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) stops the script too
cd "$(dirname "$0")/.."
. bench/lib.sh
GT=${1:-}
N=${2:-2000}
need valgrind valgrind
need callgrind_annotate valgrind
need python3 python3
find_nginx
if [[ -z $GT ]]; then
  cargo build --release --quiet
  GT=target/release/graphtape
fi
GT=$(realpath "$GT")
PLAIN=$(cargo bench --quiet --no-run --bench plain_proxy --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*plain_proxy[^"]*\)".*/\1/p' | tail -1)
[[ -x $PLAIN ]] || { echo "instructions: could not build benches/plain_proxy.rs" >&2; exit 1; }

bench_workdir instructions
start_upstream off '{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","id":"0fe0623f-d628-42ed-b4bd-8ac290072cc5","status":"running"}'
cat >"$WORK/client.py" <<'EOF'
import http.client, sys
host, port = sys.argv[1].rsplit(':', 1)
n = int(sys.argv[2])
body = b'{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"278405a3-f568-4b3e-b684-009193463064","displayName":"Adele Vance"}}}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","callbackUri":"https://bot.contoso.com/api/calls"}'
c = http.client.HTTPConnection(host, int(port), timeout=60)
for _ in range(n):
    c.request('POST', '/v1.0/communications/calls/x/participants/invite', body,
              {'Content-Type': 'application/json', 'Authorization': 'Bearer bench-token'})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f'instructions: answer {r.status}')
EOF

# counted NAME N CMD...: runs CMD under callgrind, sends N requests, prints the
# instructions counted up to the last answer
counted() {
  local name=$1 n=$2 addr="" vg
  shift 2
  rm -f "$WORK"/cg.db*
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.$n.out" "$@" \
    >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" &
  vg=$!
  PIDS+=($vg)
  for _ in $(seq 600); do
    addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/$name.stdout" | head -1 || true)
    [[ -n $addr ]] && break
    sleep 0.1
  done
  [[ -n $addr ]] || { echo "instructions: $name did not start" >&2; cat "$WORK/$name.stderr" >&2; exit 1; }
  python3 "$WORK/client.py" "$addr" "$n"
  # Dump the counts now: what comes after (shutdown) is not part of the requests.
  callgrind_control -d "$vg" >/dev/null
  for _ in $(seq 100); do
    ls "$WORK/$name.$n.out".* >/dev/null 2>&1 && break
    sleep 0.1
  done
  kill -TERM "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  local counted
  counted=$(awk '/^summary:/ {print $2; exit}' "$WORK/$name.$n.out".1)
  [[ $counted =~ ^[0-9]+$ ]] || { echo "instructions: no count from $name" >&2; exit 1; }
  echo "$counted"
}

per_request() { # per_request NAME CMD...
  local name=$1 a b
  shift
  a=$(counted "$name" 500 "$@")
  b=$(counted "$name" $((500 + N)) "$@")
  awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN {printf "%.0f", (b - a) / n}'
}

PLAIN_IR=$(per_request plain "$PLAIN" "$UP" 2 600)
GT_IR=$(per_request graphtape "$GT" record --db "$WORK/cg.db" --session cg \
  --upstream "http://127.0.0.1:$UP" --api-listen 127.0.0.1:0 --callback-listen 127.0.0.1:0)
echo "instructions per request (callgrind, $N sequential API-hop requests, user space, all threads):"
echo "  plain proxy (graphtape's stack, records nothing)  $PLAIN_IR"
awk -v g="$GT_IR" -v p="$PLAIN_IR" 'BEGIN {printf "  graphtape record                                  %d (%.2f× the plain stack)\n", g, g / p}'
echo "where graphtape's go (inclusive, per request, the run with $((500 + N)) requests):"
callgrind_annotate --inclusive=yes "$WORK/graphtape.$((500 + N)).out.1" 2>/dev/null |
  grep -E 'Relay::forward|Row::exchange|store::prepare::prepare |Packed::new|Batch::commit|ids_from_exchange|Redactor::body|Redactor::header_value|strip_hop_by_hop|capture::detach|Client<C,B>::send_request' |
  awk -v n=$((500 + N)) '{gsub(",", "", $1); name = $0; sub(/^.*\?\?\?:/, "", name); sub(/ \[.*$/, "", name); printf "  %8.0f  %s\n", $1 / n, name}'
