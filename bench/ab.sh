#!/usr/bin/env bash
# Two graphtape builds, alternately, through the same upstream: is a change faster?
#
#   bench/ab.sh OLD-BINARY NEW-BINARY [ROUNDS] [CONNECTIONS] [SECONDS]
#   (defaults: 4 rounds, c=32, 4 s per run)
#   AB_HOP=callback bench/ab.sh ...   the callback hop (notifications to --bot-url)
#                                     instead of the API hop
#
# bench/run.sh compares graphtape with nginx within one run; on a shared machine the
# figures move by 10-20% between runs, which hides a change of that size. Alternating
# the two builds, several rounds, through one nginx upstream on 127.0.0.1 shows it: each
# run prints req/s, p50 and graphtape's CPU per request (utime+stime over requests), and
# the last lines the means. Everything stops by itself; nothing is left running.
set -euo pipefail
OLD=${1:?usage: bench/ab.sh OLD-BINARY NEW-BINARY [ROUNDS] [CONNECTIONS] [SECONDS]}
NEW=${2:?usage: bench/ab.sh OLD-BINARY NEW-BINARY [ROUNDS] [CONNECTIONS] [SECONDS]}
ROUNDS=${3:-4} C=${4:-32} D=${5:-4} HOP=${AB_HOP:-api}
[[ $HOP == api || $HOP == callback ]] || { echo "ab: AB_HOP is api or callback, not $HOP" >&2; exit 2; }
for b in "$OLD" "$NEW"; do [[ -x $b ]] || { echo "ab: $b is not an executable" >&2; exit 2; }; done
OLD=$(realpath "$OLD") NEW=$(realpath "$NEW")
cd "$(dirname "$0")/.."
. bench/lib.sh
need wrk wrk
find_nginx

bench_workdir ab
start_upstream off '{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","id":"0fe0623f-d628-42ed-b4bd-8ac290072cc5","status":"running"}'
cat >"$WORK/invite.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = '{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"278405a3-f568-4b3e-b684-009193463064","displayName":"Adele Vance"}}}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","callbackUri":"https://bot.contoso.com/api/calls"}'
LUA

cat >"$WORK/notification.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resource":"/app/calls/421f0b00-2c5f-4a1e-8f57-3ab2c3d4e5f6","resourceUrl":"/communications/calls/421f0b00-2c5f-4a1e-8f57-3ab2c3d4e5f6","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}'
LUA
one() { # one NAME BINARY -> a line; appends "cpu rps" to $WORK/NAME
  local name=$1 bin=$2 api="" pid before after out n rps p50
  rm -f "$WORK"/ab.db*
  "$bin" record --db "$WORK/ab.db" --session ab --upstream "http://127.0.0.1:$UP" \
    --api-listen 127.0.0.1:0 --callback-listen 127.0.0.1:0 --bot-url "http://127.0.0.1:$UP" \
    >"$WORK/gt.out" 2>"$WORK/gt.err" &
  pid=$!
  for _ in $(seq 200); do
    api=$(sed -n "s/^listening $HOP=//p" "$WORK/gt.out")
    [[ -n $api ]] && break
    sleep 0.05
  done
  [[ -n $api ]] || { echo "ab: $bin did not start:" >&2; cat "$WORK/gt.err" >&2; exit 1; }
  local url="$api/v1.0/communications/calls/x/participants/invite" lua=$WORK/invite.lua
  [[ $HOP == callback ]] && url="$api/api/calls" lua=$WORK/notification.lua
  wrk -t1 -c"$C" -d1s -s "$lua" "$url" >/dev/null # warm up
  before=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$C" -d"${D}s" --latency -s "$lua" "$url")
  after=$(cpu_ticks "$pid")
  kill -TERM "$pid"
  wait "$pid" || { echo "ab: $bin exited non-zero:" >&2; cat "$WORK/gt.err" >&2; exit 1; }
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  local cpu
  cpu=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$n" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$cpu $rps" >>"$WORK/$name"
  printf '%-4s c=%s %7d req/s  p50 %8s  CPU %6s µs/req\n' "$name" "$C" "$rps" "$p50" "$cpu"
}
echo "ab: $HOP hop, $ROUNDS rounds, c=$C, ${D}s each; old=$OLD new=$NEW; load $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$ROUNDS"); do
  one old "$OLD"
  one new "$NEW"
done
for name in old new; do
  awk -v name="$name" '{c += $1; r += $2; n++} END {printf "%-4s mean: %.0f req/s, CPU %.1f µs/req (%d runs)\n", name, r / n, c / n, n}' "$WORK/$name"
done
