#!/usr/bin/env bash
# Scale-out benchmark (issue 19): BENCH_SCALE_SITES generated sites of BENCH_SCALE_PAGES
# pages, each on a host of its own (127.0.0.10, .11, ...; nginx), audited by Dramatiq
# workers over a redis-server started here (loopback, temporary directory, no persistence):
# first 1 worker process, then 2; prints the throughput of each and the ratio.
# `make bench` runs it with BENCH_SCALEOUT=1; alone: bash bench/scaleout.sh.
#
# Knobs:
#   BENCH_SCALE_SITES [20]   BENCH_SCALE_PAGES [500]   BENCH_SCALE_WORKERS [1,2]
#   BENCH_SCALE_DELAY [0]    crawl.delay (seconds between requests to one host)
#   BENCH_SCALE_PER_HOST [4] crawl.per_host_concurrency
#   BENCH_SCALE_PORT [18090] nginx port
#   BENCH_SCALE_HISTORY_URL  a postgresql:// history (default: a SQLite file per run)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work/scaleout
PY=$ROOT/.venv/bin/python
PORT=${BENCH_SCALE_PORT:-18090}
SITES=${BENCH_SCALE_SITES:-20}
PAGES=${BENCH_SCALE_PAGES:-500}
log() { echo "bench: $*" >&2; }

for bin in nginx redis-server; do
    command -v "$bin" >/dev/null || { log "$bin missing (apt-get install nginx-light redis-server)"; exit 2; }
done
rm -rf "$WORK" && mkdir -p "$WORK/www" "$WORK/ext" "$WORK/nginx/tmp" "$WORK/redis"
log "generating a site of $PAGES pages (served as $SITES hosts)"
"$PY" "$BENCH/gen_site.py" --pages "$PAGES" --port "$PORT" --www "$WORK/www" --ext "$WORK/ext"
chmod -R a+rX "$WORK" 2>/dev/null || true

listens=""
for i in $(seq 0 $((SITES - 1))); do listens+="listen 127.0.0.$((10 + i)):$PORT; "; done
sed -e "s#@WORK@#$WORK#g" -e "s#@PORT@#$PORT#g" \
    -e "s#listen 127.0.0.1:$PORT;#listen 127.0.0.1:$PORT; $listens#" \
    "$BENCH/nginx.conf.in" > "$WORK/nginx/nginx.conf"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
RPORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly no \
    --logfile "$WORK/redis/redis.log" &
REDIS_PID=$!
cleanup() {
    kill "$NGINX_PID" "$REDIS_PID" 2>/dev/null || true
    wait "$NGINX_PID" "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.10:$PORT/s$PAGES/index.html" \
        && redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.10:$PORT/s$PAGES/index.html" || { log "nginx did not start"; exit 2; }

cd "$ROOT"
"$PY" "$BENCH/scaleout.py" --work "$WORK" --port "$PORT" --redis "redis://127.0.0.1:$RPORT/0" \
    --sites "$SITES" --pages "$PAGES" --workers "${BENCH_SCALE_WORKERS:-1,2}" \
    --delay "${BENCH_SCALE_DELAY:-0}" --per-host "${BENCH_SCALE_PER_HOST:-4}" \
    --history-url "${BENCH_SCALE_HISTORY_URL:-}" | tee "$WORK/results.txt"
