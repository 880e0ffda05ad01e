# Shell helpers bench/run.sh and bench/ab.sh share. Source it, then call bench_workdir.
# Everything listens on 127.0.0.1; the EXIT trap stops what was started.

need() { # need COMMAND DEBIAN-PACKAGE: installs it (as root) when missing, or exits 2
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bench: installing $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  fi
  command -v "$1" >/dev/null 2>&1 || { echo "bench: needs $1 (Debian package $2)" >&2; exit 2; }
}

find_nginx() { # sets NGINX (Debian keeps it in /usr/sbin), installing it when missing
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  [[ -x $NGINX ]] || { need nginx nginx; NGINX=$(command -v nginx || echo /usr/sbin/nginx); }
}

bench_workdir() { # bench_workdir NAME: sets WORK (a fresh directory) and PIDS, killed on exit
  WORK=$(mktemp -d "/tmp/graphtape-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

port() { # a free loopback port
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listening on $1" >&2
  exit 1
}
TICK=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of the given pids, in clock ticks
  local sum=0 pid fields
  for pid in "$@"; do
    # after the ")" that ends the command name, utime and stime are fields 12 and 13
    read -ra fields <<<"$(sed 's/^.*) //' "/proc/$pid/stat")"
    sum=$((sum + fields[11] + fields[12]))
  done
  echo "$sum"
}
nginx_conf() { # nginx_conf NAME WORKERS SERVER-BODY
  cat >"$WORK/nginx/$1.conf" <<EOF
$( [[ $(id -u) == 0 ]] && echo "user root;" )
worker_processes $2;
daemon off;
pid $WORK/nginx/$1.pid;
error_log $WORK/nginx/$1.error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $WORK/nginx/$1.body;
  proxy_temp_path $WORK/nginx/$1.proxy;
  fastcgi_temp_path $WORK/nginx/$1.fcgi;
  uwsgi_temp_path $WORK/nginx/$1.uwsgi;
  scgi_temp_path $WORK/nginx/$1.scgi;
  keepalive_requests 1000000;
  $3
}
EOF
}
start_upstream() { # start_upstream ACCESS-LOG ANSWER: sets UP, an nginx there answering ANSWER (JSON)
  UP=$(port)
  mkdir -p "$WORK/nginx"
  nginx_conf upstream 1 "
  access_log $1;
  server {
    listen 127.0.0.1:$UP;
    location / { default_type application/json; return 200 '$2'; }
  }"
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/upstream.conf" &
  PIDS+=($!)
  wait_port "$UP"
}
