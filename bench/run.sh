#!/usr/bin/env bash
# graphtape's hot-path benchmark: one command, one table.
#
#   bench/run.sh            full run (release build, a few seconds per row)
#   bench/run.sh --smoke    checks that every part works, fast (debug build, 1 s per
#                           row, no speed threshold); .ci/run runs this
#   BENCH_PERF=FILE bench/run.sh   also profiles graphtape's first c=32 run with perf
#   BENCH_PERF_CALLS="--call-graph dwarf,16384"   how perf records call stacks (default -g)
#   BENCH_D1=S BENCH_D32=S         seconds per c=1 and c=32 run (default 3 and 5)
#   GRAPHTAPE_BIN=PATH             measure that binary instead of building this checkout
#   BENCH_LONG=N                   also the memory check: graphtape's resident memory after
#                                  N exchanges (e.g. 1000000) against after 10,000, through
#                                  one graphtape at c=32 (--smoke: 5,000 against 1,000)
#
# Everything runs on 127.0.0.1 and stops by itself. An nginx serves as the upstream
# (291 bytes of JSON for every request, one access-log line per request: the count of
# what was forwarded); wrk POSTs a 510-byte Graph invite body (a notification of the
# same size for the callback hop) at concurrency 1 and 32, through each path:
#   direct          wrk -> upstream
#   nginx           wrk -> nginx (plain reverse proxy, records nothing) -> upstream
#   hyper plain     wrk -> benches/plain_proxy.rs (graphtape's HTTP stack, records
#                   nothing: what the stack costs, apart from recording) -> upstream
#   graphtape       wrk -> graphtape record (API listener) -> upstream
#   graphtape -t1   the same with --threads 1 (how throughput scales with threads)
#   callback hop    wrk -> graphtape record (callback listener, --bot-url) -> upstream
# CPU per request is the proxy process's utime+stime (from /proc) over the c=32 run,
# divided by the requests wrk completed; peak RSS is its VmHWM. "recorded/sent"
# compares the exchanges in graphtape's SQLite file with the requests the upstream
# logged while that graphtape ran. Then the writer alone (`cargo bench --bench writer`,
# if present) and the replay timing error (`cargo bench --bench replay_timing`).
#
# The machine is shared: compare ratios within one run, and read the load averages
# printed with the table.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
if ((SMOKE)); then
  D1=1 D32=1 C32=4 PROFILE=debug LONG_FIRST=1000 LONG=5000
else
  D1=${BENCH_D1:-3} D32=${BENCH_D32:-5} C32=32 PROFILE=release LONG_FIRST=10000 LONG=${BENCH_LONG:-0}
fi

need wrk wrk
find_nginx

if [[ -n ${GRAPHTAPE_BIN:-} ]]; then
  GT=$GRAPHTAPE_BIN # another build, e.g. to compare with an older commit
else
  if [[ $PROFILE == release ]]; then
    cargo build --release --quiet
  else
    cargo build --quiet
  fi
  GT=target/$PROFILE/graphtape
fi

# The floor under graphtape's hop: its HTTP stack recording nothing (benches/plain_proxy.rs).
PLAIN=""
if [[ -f benches/plain_proxy.rs ]]; then
  if [[ $PROFILE == release ]]; then build=(cargo bench); else build=(cargo test); fi
  PLAIN=$("${build[@]}" --quiet --no-run --bench plain_proxy --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*plain_proxy[^"]*\)".*/\1/p' | tail -1)
  [[ -x $PLAIN ]] || { echo "bench: could not build benches/plain_proxy.rs" >&2; exit 1; }
fi

bench_workdir bench

# --- bodies ----------------------------------------------------------------------
pad() { # pad TEXT-WITH-@PAD@ LENGTH: fills @PAD@ with x so the text is LENGTH bytes
  local text=$1 len=$2 fill=""
  local missing=$((len - ${#text} + 5))
  while ((${#fill} < missing)); do fill+=x; done
  printf '%s' "${text/@PAD@/$fill}"
}
INVITE=$(pad '{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"278405a3-f568-4b3e-b684-009193463064","displayName":"Adele Vance","identityProvider":"AAD"}},"replacesCallId":"a7ebfb2d-871e-419c-87af-27290b22e8db"}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f@PAD@"}' 510)
NOTIFICATION=$(pad '{"value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resource":"/app/calls/421f0b00-2c5f-4a1e-8f57-3ab2c3d4e5f6","resourceUrl":"/communications/calls/421f0b00-2c5f-4a1e-8f57-3ab2c3d4e5f6","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established","callChainId":"b0b1d1f2-0000-4000-8000-00000000000a@PAD@"}}]}' 510)
ANSWER=$(pad '{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","id":"0fe0623f-d628-42ed-b4bd-8ac290072cc5","status":"running","clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","resultInfo":null,"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","x":"@PAD@"}]}' 291)
((${#INVITE} == 510 && ${#NOTIFICATION} == 510 && ${#ANSWER} == 291)) ||
  { echo "bench: body sizes ${#INVITE}/${#NOTIFICATION}/${#ANSWER}" >&2; exit 1; }
lua() { # lua FILE BODY
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = [==[$2]==]
EOF
}
lua "$WORK/invite.lua" "$INVITE"
lua "$WORK/notification.lua" "$NOTIFICATION"

# --- helpers ---------------------------------------------------------------------
hwm_kb() { # summed VmHWM of the given pids
  local sum=0 pid
  for pid in "$@"; do
    sum=$((sum + $(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")))
  done
  echo "$sum"
}
us() { # wrk's "123.45us" / "1.20ms" / "2.00s" in microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
    printf "%.1f", n * m }'
}

# wrk URL LUA DURATION CONNECTIONS PIDS... -> sets RPS P50 P99 DONE CPU_US
load() {
  local url=$1 script=$2 dur=$3 conns=$4
  shift 4
  local before after out
  before=$(cpu_ticks "$@")
  out=$(wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$script" "$url")
  after=$(cpu_ticks "$@")
  RPS=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
  DONE=$(awk '/requests in/ {print $1}' <<<"$out")
  P50=$(us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  P99=$(us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  if (($# > 0 && DONE > 0)); then
    CPU_US=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$DONE" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  else
    CPU_US=-
  fi
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench: non-2xx answers on $url:" >&2
    echo "$out" >&2
    exit 1
  fi
}

# --- the upstream (and the reference proxy): nginx -------------------------------
start_upstream "$WORK/nginx/upstream.access.log" "$ANSWER"
forwarded() { wc -l <"$WORK/nginx/upstream.access.log"; }
reset_forwarded() { : >"$WORK/nginx/upstream.access.log"; }

PX=$(port)
nginx_conf proxy auto "
  access_log off;
  upstream graph { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$PX;
    location / {
      proxy_pass http://graph;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/proxy.conf" &
NGINX_PROXY=$!
PIDS+=($NGINX_PROXY)
wait_port "$PX"
nginx_workers() { pgrep -P "$NGINX_PROXY" | tr '\n' ' '; }

# --- graphtape -------------------------------------------------------------------
GT_PID="" GT_API="" GT_CB=""
start_graphtape() { # start_graphtape SESSION [extra flags]
  local session=$1
  shift
  "$GT" record --db "$WORK/bench.db" --session "$session" \
    --upstream "http://127.0.0.1:$UP" --api-listen 127.0.0.1:0 \
    --callback-listen 127.0.0.1:0 --bot-url "http://127.0.0.1:$UP" "$@" \
    >"$WORK/$session.out" 2>"$WORK/$session.err" &
  GT_PID=$!
  PIDS+=($GT_PID)
  for _ in $(seq 200); do
    GT_API=$(sed -n 's/^listening api=//p' "$WORK/$session.out")
    GT_CB=$(sed -n 's/^listening callback=//p' "$WORK/$session.out")
    [[ -n $GT_API && -n $GT_CB ]] && return 0
    sleep 0.05
  done
  echo "bench: graphtape did not start:" >&2
  cat "$WORK/$session.err" >&2
  exit 1
}
stop_graphtape() { # stop_graphtape SESSION KIND(api_exchanges|callbacks) -> RECORDED
  kill -TERM "$GT_PID"
  wait "$GT_PID" || { echo "bench: graphtape exited non-zero:" >&2; cat "$WORK/$1.err" >&2; exit 1; }
  RECORDED=$("$GT" sessions --db "$WORK/bench.db" --json |
    grep "\"name\":\"$1\"" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p")
}

# --- the runs ----------------------------------------------------------------------
ROWS=()
FAILED=0
row() { # row NAME c1(rps p50 p99) c32(rps p50 p99 cpu) recorded/sent rss
  ROWS+=("$(printf '%s\t' "$@")")
}
D_P50=0
run_path() { # run_path NAME URL LUA KIND(direct|nginx|graphtape|callback) [graphtape flags]
  local name=$1 url=$2 lua=$3 kind=$4
  shift 4
  local pids=() session="" rec="-" rss="-"
  case $kind in
    nginx) read -ra pids <<<"$(nginx_workers)" ;;
    plain)
      "$PLAIN" "$UP" 2 $((D1 + D32 + 30)) >"$WORK/plain.out" &
      local plain_pid=$!
      PIDS+=($plain_pid)
      pids=("$plain_pid")
      local addr=""
      for _ in $(seq 200); do
        addr=$(sed -n 's/^listening=//p' "$WORK/plain.out")
        [[ -n $addr ]] && break
        sleep 0.05
      done
      [[ -n $addr ]] || { echo "bench: the plain proxy did not start" >&2; exit 1; }
      url="http://$addr$url"
      ;;
    graphtape | callback)
      session="bench-$RANDOM"
      start_graphtape "$session" "$@"
      pids=("$GT_PID")
      reset_forwarded
      if [[ $kind == graphtape ]]; then url="$GT_API$url"; else url="$GT_CB$url"; fi
      ;;
  esac
  load "$url" "$lua" "$D1" 1 "${pids[@]}"
  local c1=("$RPS" "$P50" "$P99")
  [[ $kind == direct ]] && D_P50=$P50
  local added
  added=$(awk -v a="$P50" -v d="$D_P50" 'BEGIN {printf "%.1f", a - d}')
  if [[ -n ${BENCH_PERF:-} && $kind == graphtape && -n $session ]]; then
    # BENCH_PERF=1: profile graphtape during its c=32 run (perf report -i the file).
    perf record -q -F 999 ${BENCH_PERF_CALLS:--g} -o "$BENCH_PERF" -p "$GT_PID" -- sleep "$D32" 2>/dev/null &
    local perf_pid=$!
  fi
  load "$url" "$lua" "$D32" "$C32" "${pids[@]}"
  [[ -n ${perf_pid:-} ]] && { wait "$perf_pid" || true; BENCH_PERF=""; }
  local c32=("$RPS" "$P50" "$P99" "$CPU_US")
  if ((${#pids[@]} > 0)); then rss=$(( $(hwm_kb "${pids[@]}") / 1024 ))MiB; fi
  if [[ -n $session ]]; then
    local kindcol=api_exchanges
    [[ $kind == callback ]] && kindcol=callbacks
    stop_graphtape "$session" "$kindcol"
    # nginx logs a request just after answering it: wait (bounded) for the last lines.
    local sent
    for _ in $(seq 40); do
      sent=$(forwarded)
      [[ $sent == "$RECORDED" ]] && break
      sleep 0.05
    done
    rec="$RECORDED/$sent"
    [[ $RECORDED == "$sent" ]] || FAILED=1
  fi
  [[ ${c1[0]} -gt 0 && ${c32[0]} -gt 0 ]] || FAILED=1
  [[ $kind == plain ]] && kill "${pids[0]}" 2>/dev/null
  row "$name" "${c1[0]}" "${c1[1]}" "${c1[2]}" "$added" "${c32[0]}" "${c32[1]}" "${c32[2]}" "${c32[3]}" "$rec" "$rss"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
run_path "direct to the upstream" "http://127.0.0.1:$UP/v1.0/communications/calls/x/participants/invite" "$WORK/invite.lua" direct
run_path "nginx (plain proxy, records nothing)" "http://127.0.0.1:$PX/v1.0/communications/calls/x/participants/invite" "$WORK/invite.lua" nginx
if [[ -n $PLAIN ]]; then
  run_path "hyper plain proxy (graphtape's stack, records nothing)" "/v1.0/communications/calls/x/participants/invite" "$WORK/invite.lua" plain
fi
run_path "graphtape record (API hop)" "/v1.0/communications/calls/x/participants/invite" "$WORK/invite.lua" graphtape
if "$GT" record --help | grep -q -- --threads; then
  run_path "graphtape record --threads 1" "/v1.0/communications/calls/x/participants/invite" "$WORK/invite.lua" graphtape --threads 1
fi
run_path "graphtape callback hop" "/api/calls" "$WORK/notification.lua" callback
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- memory over a long run ----------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Where resident memory is: the heap and other private pages (RssAnon) against mapped
# files (RssFile, e.g. SQLite's WAL index) and shared memory.
rss_parts() { awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} /^RssShmem:/ {s = $2} END {printf "anon %.1f, file %.1f, shmem %.1f MiB", a / 1024, f / 1024, s / 1024}' "/proc/$1/status"; }
wait_forwarded() { # wait_forwarded N DEADLINE-SECONDS: until the upstream has logged N requests
  local until=$((SECONDS + $2))
  while (($(forwarded) < $1)); do
    ((SECONDS < until)) || { echo "bench: fewer than $1 requests in $2 s" >&2; exit 1; }
    sleep 0.5
  done
}
# Exchanges forwarded but not yet committed (in flight, or queued for the writer, whose
# byte budget bounds the queue): resident memory includes them. The count of forwarded
# ones is read first: the query takes a while, and its snapshot is taken as it starts.
waiting() { # waiting SESSION
  local sent committed
  sent=$(forwarded)
  committed=$("$GT" sessions --db "$WORK/bench.db" --json |
    grep "\"name\":\"$1\"" | sed -n 's/.*"api_exchanges":\([0-9]*\).*/\1/p')
  local left=$((sent - ${committed:-0}))
  echo $((left > 0 ? left : 0))
}
LONG_LINE=""
if ((LONG > 0)); then
  session="bench-long-$RANDOM"
  start_graphtape "$session"
  reset_forwarded
  wrk -t1 -c"$C32" -d3600s -s "$WORK/invite.lua" \
    "$GT_API/v1.0/communications/calls/x/participants/invite" >"$WORK/long.wrk" 2>&1 &
  WRK_PID=$!
  PIDS+=($WRK_PID)
  # Bounded: at least 2,000 exchanges a second, or the run fails.
  wait_forwarded "$LONG_FIRST" $((LONG_FIRST / 2000 + 60))
  first_at=$(forwarded) first_rss=$(rss_kb "$GT_PID") first_parts=$(rss_parts "$GT_PID") first_queued=$(waiting "$session")
  wait_forwarded "$LONG" $((LONG / 2000 + 60))
  last_at=$(forwarded) last_rss=$(rss_kb "$GT_PID") last_parts=$(rss_parts "$GT_PID") last_queued=$(waiting "$session")
  kill "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" 2>/dev/null || true
  stop_graphtape "$session" api_exchanges
  for _ in $(seq 40); do
    sent=$(forwarded)
    [[ $sent == "$RECORDED" ]] && break
    sleep 0.05
  done
  [[ $RECORDED == "$sent" ]] || FAILED=1
  LONG_LINE=$(awk -v a="$first_at" -v ra="$first_rss" -v qa="$first_queued" -v b="$last_at" -v rb="$last_rss" -v qb="$last_queued" -v rec="$RECORDED" -v sent="$sent" 'BEGIN {
    printf "memory: resident %.1f MiB after %d exchanges (%d not yet committed), %.1f MiB after %d (%d not yet committed) (%.2f×; target <= 1.2×), recorded/sent %d/%d",
      ra / 1024, a, qa, rb / 1024, b, qb, rb / ra, rec, sent }')
  LONG_LINE+=$'\n'"        after $first_at: $first_parts; after $last_at: $last_parts"
fi

# --- the table -----------------------------------------------------------------------
NGINX_RPS=$(cut -f6 <<<"${ROWS[1]}")
NGINX_CPU=$(cut -f9 <<<"${ROWS[1]}")
echo
echo "graphtape hot path: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $LOAD_BEFORE before, $LOAD_AFTER after"
echo "wrk -t1 POSTs of ${#INVITE} bytes, answers of ${#ANSWER} bytes; c=1 for ${D1}s, c=$C32 for ${D32}s; $PROFILE build"
echo
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' path "c=1 req/s" "c=1 p50 µs" "c=1 p99 µs" "added p50 µs" "c=$C32 req/s" "c=$C32 p50 µs" "c=$C32 p99 µs" "CPU µs/req" "recorded/sent" "peak RSS"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
  IFS=$'\t' read -r name r1 p50 p99 added r32 q50 q99 cpu rec rss <<<"$r"
  ratio="" cratio=""
  if [[ $name != direct* && $name != nginx* ]]; then
    ratio=$(awk -v a="$r32" -v b="$NGINX_RPS" 'BEGIN {if (b > 0) printf " (%.2f×)", a / b}')
    cratio=$(awk -v a="$cpu" -v b="$NGINX_CPU" 'BEGIN {if (b > 0 && a != "-") printf " (%.2f×)", a / b}')
  fi
  [[ $name == direct* ]] && added="–"
  printf '| %s | %s | %s | %s | %s | %s%s | %s | %s | %s%s | %s | %s |\n' "$name" "$r1" "$p50" "$p99" "$added" "$r32" "$ratio" "$q50" "$q99" "$cpu" "$cratio" "$rec" "$rss"
done
echo "(ratios: graphtape against nginx from this run; targets: c=$C32 req/s >= 0.9×, CPU/request <= 1.5×, added p50 <= 50 µs, recorded = sent)"
[[ -n $LONG_LINE ]] && { echo; echo "$LONG_LINE"; }

echo
if ((SMOKE)); then
  echo "writer alone, replay timing: skipped in --smoke (cargo bench builds release)"
else
  if [[ -f benches/writer.rs ]]; then
    echo "writer alone (cargo bench --bench writer):"
    cargo bench --quiet --bench writer 2>/dev/null | sed 's/^/  /'
  else
    echo "writer alone: no benches/writer.rs in this checkout"
  fi
  echo "replay timing (cargo bench --bench replay_timing):"
  cargo bench --quiet --bench replay_timing 2>/dev/null | sed 's/^/  /'
fi

if ((FAILED)); then
  echo "bench: FAILED: a path answered nothing, or recorded differs from sent" >&2
  exit 1
fi
