#!/usr/bin/env bash
# sitewatch benchmark: `make bench` (or `bash bench/run.sh`). See bench/README.md.
#
# Installs what it needs (nginx-light and postgresql-doc-15 from Debian's packages,
# LinkChecker 10.6 into bench/work/linkchecker-venv, linkinator 7.6 into bench/work/node),
# generates the synthetic sites, serves everything with nginx on 127.0.0.1-127.0.0.4,
# runs sitewatch and the peers alternately, and writes bench/work/results.jsonl (raw, one
# line per run; git-ignored) and bench/RESULTS.md. All traffic stays on loopback.
#
# Environment knobs (defaults in brackets):
#   BENCH_PORT [18080]      nginx port on 127.0.0.1-4
#   BENCH_PG_REPS [5]       repetitions for the PostgreSQL manual (its ratios are the bar)
#   BENCH_REPS [3]          repetitions for the small generated sites
#   BENCH_SIZES ["2000 20000 100000"]   generated site sizes
#   BENCH_BIG_REPS [1]      repetitions for sizes >= 20000 (the 20-minute budget)
#   BENCH_LINKCHECKER [1]   0 skips LinkChecker (slowest peer, ~30 s a run)
#   BENCH_RERUN [1]         0 skips the weekly re-run scenario (~1 min)
#   BENCH_POLITE [1]        0 skips the politeness-bound scenario (~1.5 min): s2000 behind
#                           bench/delay_proxy.py (BENCH_POLITE_DELAY [0.05] s per request,
#                           on 127.0.0.1:BENCH_PORT+1), per_host_concurrency 4, beside
#                           linkinator --concurrency 4; BENCH_POLITE_REPS [1] rounds
#   BENCH_ONLY_POLITE [0]   1 runs only that scenario (its table: bench/work/RESULTS-polite.md)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work
PY=$ROOT/.venv/bin/python
PORT=${BENCH_PORT:-18080}
PG_REPS=${BENCH_PG_REPS:-5}
REPS=${BENCH_REPS:-3}
SIZES=${BENCH_SIZES:-"2000 20000 100000"}
BIG_REPS=${BENCH_BIG_REPS:-1}
WITH_LC=${BENCH_LINKCHECKER:-1}
WITH_RERUN=${BENCH_RERUN:-1}
WITH_POLITE=${BENCH_POLITE:-1}
POLITE_DELAY=${BENCH_POLITE_DELAY:-0.05}
POLITE_REPS=${BENCH_POLITE_REPS:-1}
POLITE_PORT=$((PORT + 1))
ONLY_POLITE=${BENCH_ONLY_POLITE:-0}
if [ "$ONLY_POLITE" = 1 ]; then
    WITH_POLITE=1 WITH_LC=0 WITH_RERUN=0 PG_REPS=0 SIZES=2000
fi
RESULTS_MD=$BENCH/RESULTS.md
[ "$ONLY_POLITE" = 1 ] && RESULTS_MD=$WORK/RESULTS-polite.md
PGDOC=/usr/share/doc/postgresql-doc-15/html
RESULTS=$WORK/results.jsonl
POLITE=$WORK/polite.jsonl
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
T0=$(date +%s)

log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

mkdir -p "$WORK"

# ---------------------------------------------------------------------------- installs
if ! command -v nginx >/dev/null || [ ! -f "$PGDOC/index.html" ]; then
    log "installing nginx-light and postgresql-doc-15 (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nginx-light postgresql-doc-15 >/dev/null
fi
LC=$WORK/linkchecker-venv/bin/linkchecker
if [ "$WITH_LC" = 1 ] && [ ! -x "$LC" ]; then
    log "installing LinkChecker 10.6.0 into bench/work/linkchecker-venv"
    python3 -m venv "$WORK/linkchecker-venv"
    "$WORK/linkchecker-venv/bin/pip" install -q 'linkchecker==10.6.0'
fi
LK=$WORK/node/node_modules/.bin/linkinator
if [ ! -x "$LK" ]; then
    log "installing linkinator 7.6 into bench/work/node (npm)"
    mkdir -p "$WORK/node"
    (cd "$WORK/node" && { [ -f package.json ] || npm init -y >/dev/null; } \
        && npm install --silent --no-audit --no-fund linkinator@7.6 >/dev/null)
fi
"$PY" -c "import psutil" 2>/dev/null || "$PY" -m pip install -q psutil
# The project's own modules are compiled once, as a regular (non-editable) install would;
# with PYTHONDONTWRITEBYTECODE set, every run would otherwise recompile them.
"$PY" -m compileall -q "$ROOT/crawler" "$ROOT/checks" "$ROOT/reports" >/dev/null

# ---------------------------------------------------------------------------- sites
mkdir -p "$WORK/www" "$WORK/ext" "$WORK/nginx/tmp" "$WORK/out" "$WORK/cfg"
ln -sfn "$PGDOC" "$WORK/www/pg"
for n in $SIZES; do
    log "generating site s$n"
    "$PY" "$BENCH/gen_site.py" --pages "$n" --port "$PORT" --www "$WORK/www" --ext "$WORK/ext"
done
chmod -R a+rX "$WORK/www" "$WORK/ext" "$BENCH" 2>/dev/null || true

# ---------------------------------------------------------------------------- nginx
if "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$PORT))!=0)"; then
    echo "bench: port $PORT on 127.0.0.1 is taken; set BENCH_PORT" >&2
    exit 2
fi
sed -e "s#@WORK@#$WORK#g" -e "s#@PORT@#$PORT#g" "$BENCH/nginx.conf.in" > "$WORK/nginx/nginx.conf"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
PROXY_PID=
cleanup() {
    for pid in $PROXY_PID $NGINX_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/pg/index.html" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/pg/index.html" || { echo "bench: nginx did not start" >&2; exit 2; }
log "nginx serving on 127.0.0.1-4:$PORT"

# ---------------------------------------------------------------------------- configs
BASE=http://127.0.0.1:$PORT
# Loopback benchmark limits, raised explicitly (the defaults stay polite for real sites:
# crawl.concurrency 16, per_host_concurrency 4). Both peers also run with 32 connections.
cat > "$WORK/cfg/pg.toml" <<EOF
# PostgreSQL manual: links leaving 127.0.0.1 are not checked (no internet here).
[site]
exclude = ['^https?://(?!127\\.0\\.0\\.1[:/])']
[crawl]
max_pages = 1000000
concurrency = 32
per_host_concurrency = 32
[history]
db = "$WORK/out/history-pg.db"
EOF
for n in $SIZES; do
    cat > "$WORK/cfg/s$n.toml" <<EOF
# Generated site s$n: outside links go to 127.0.0.2-4 and are checked.
[crawl]
max_pages = 1000000
max_depth = 1000
concurrency = 32
per_host_concurrency = 32
[history]
db = "$WORK/out/history-s$n.db"
EOF
done
# LinkChecker: unthrottled needs both the server's "LinkChecker" header (nginx sends it)
# and a raised maxrequestspersecond; 10 threads; only URLs on 127.0.0.1 are checked.
cat > "$WORK/cfg/linkcheckerrc" <<'EOF'
[checking]
threads=10
maxrequestspersecond=10000
[filtering]
ignore=
  ^(?!http://127\.0\.0\.1)
checkextern=0
EOF
chmod -R a+rX "$WORK/cfg"

M() { "$PY" "$BENCH/measure.py" --out "$RESULTS" --run-id "$RUN_ID" "$@"; }

SW_PG="--config cfg/pg.toml, concurrency 32, per-host 32 (raised for loopback)"
LK_SET="--recurse --concurrency 32, skip non-127.0.0.1"
LC_SET="10 threads, unthrottled (LinkChecker header + maxrequestspersecond=10000), intern URLs only, no anchor check"

# ---------------------------------------------------------------------------- PostgreSQL manual
if [ "$ONLY_POLITE" != 1 ]; then
log "PostgreSQL manual: $PG_REPS rounds of sitewatch, linkinator (twice), LinkChecker (if BENCH_LINKCHECKER=1)"
for rep in $(seq "$PG_REPS"); do
    rm -rf "$WORK/out/pg" "$WORK/out/history-pg.db"*
    M --site pg --tool sitewatch --settings "$SW_PG" --rep "$rep" \
        --parse "sitewatch:$WORK/out/pg/report.json" --stdout "$WORK/out/pg.sitewatch.out" -- \
        "$ROOT/.venv/bin/sitewatch" audit "$BASE/pg/index.html" --scope "$BASE/pg/" \
        --config "$WORK/cfg/pg.toml" --out "$WORK/out/pg" --as-of 2026-11-26 -q
    M --site pg --tool linkinator --settings "$LK_SET" --rep "$rep" \
        --parse "linkinator:$WORK/out/pg.linkinator.json" --stdout "$WORK/out/pg.linkinator.json" -- \
        "$LK" "$BASE/pg/" --recurse --concurrency 32 --skip '^(?!http://127\.0\.0\.1)' --format json
    M --site pg --tool "linkinator --check-fragments" --settings "$LK_SET, --check-fragments" \
        --rep "$rep" --parse "linkinator:$WORK/out/pg.linkinator-cf.json" \
        --stdout "$WORK/out/pg.linkinator-cf.json" -- \
        "$LK" "$BASE/pg/" --recurse --concurrency 32 --skip '^(?!http://127\.0\.0\.1)' \
        --format json --check-fragments
    if [ "$WITH_LC" = 1 ]; then
        M --site pg --tool linkchecker --settings "$LC_SET" --rep "$rep" \
            --parse "linkchecker:$WORK/out/pg.linkchecker.csv" \
            --stdout "$WORK/out/pg.linkchecker.csv" -- \
            "$LC" -f "$WORK/cfg/linkcheckerrc" --no-status -o csv "$BASE/pg/index.html"
    fi
done

# ---------------------------------------------------------------------------- generated sites
for n in $SIZES; do
    reps=$REPS
    [ "$n" -ge 20000 ] && reps=$BIG_REPS
    log "generated site s$n: $reps run(s) of sitewatch"
    for rep in $(seq "$reps"); do
        rm -rf "$WORK/out/s$n" "$WORK/out/history-s$n.db"*
        M --site "s$n" --tool sitewatch \
            --settings "--config cfg/s$n.toml, concurrency 32, per-host 32 (raised for loopback)" \
            --rep "$rep" --parse "sitewatch:$WORK/out/s$n/report.json" \
            --stdout "$WORK/out/s$n.sitewatch.out" -- \
            "$ROOT/.venv/bin/sitewatch" audit "$BASE/s$n/" --config "$WORK/cfg/s$n.toml" \
            --out "$WORK/out/s$n" --as-of 2026-11-26 -q
    done
    if [ "$n" -le 2000 ]; then
        M --site "s$n" --tool "linkinator --check-fragments" \
            --settings "--recurse --concurrency 32 --check-fragments" --rep 1 \
            --parse "linkinator:$WORK/out/s$n.linkinator-cf.json" \
            --stdout "$WORK/out/s$n.linkinator-cf.json" -- \
            "$LK" "$BASE/s$n/" --recurse --concurrency 32 --format json --check-fragments
    fi
done
fi  # ONLY_POLITE

# ---------------------------------------------------------------------------- politeness-bound
# s2000 behind a proxy that adds POLITE_DELAY to every request (bench/delay_proxy.py), with
# crawl.per_host_concurrency = 4: the wall time is bound by the latency; its floor is
# requests x latency / 4. Outside links go straight to nginx on 127.0.0.2-4. The proxy counts
# each run's requests, the most that waited for an answer at once and the mean.
polite_count() {  # TOOL REP: append the proxy's numbers for the run just made
    local got n most mean
    got=$(curl -sf "http://127.0.0.1:$POLITE_PORT/__delay_proxy/count")
    read -r n most mean <<< "$got"
    printf '{"run_id": "%s", "tool": "%s", "rep": %s, "delay": %s, "requests": %s, "max_in_flight": %s, "mean_in_flight": %s}\n' \
        "$RUN_ID" "$1" "$2" "$POLITE_DELAY" "$n" "$most" "$mean" >> "$POLITE"
}
if [ "$WITH_POLITE" = 1 ] && [ -f "$WORK/www/s2000/index.html" ]; then
    log "politeness-bound: s2000 behind $POLITE_DELAY s per request, per-host 4, $POLITE_REPS round(s)"
    if "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$POLITE_PORT))!=0)"; then
        echo "bench: port $POLITE_PORT on 127.0.0.1 is taken; set BENCH_PORT" >&2
        exit 2
    fi
    "$PY" "$BENCH/delay_proxy.py" --listen "127.0.0.1:$POLITE_PORT" \
        --upstream "127.0.0.1:$PORT" --delay "$POLITE_DELAY" &
    PROXY_PID=$!
    for _ in $(seq 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$POLITE_PORT/__delay_proxy/count" && break
        sleep 0.1
    done
    cat > "$WORK/cfg/polite.toml" <<EOF
# s2000 behind bench/delay_proxy.py, with the defaults' politeness (per-host 4, 16 overall).
[crawl]
max_pages = 1000000
max_depth = 1000
concurrency = 16
per_host_concurrency = 4
[history]
db = "$WORK/out/history-polite.db"
EOF
    SLOW=http://127.0.0.1:$POLITE_PORT/s2000/
    for rep in $(seq "$POLITE_REPS"); do
        rm -rf "$WORK/out/polite" "$WORK/out/history-polite.db"*
        curl -sf -o /dev/null "http://127.0.0.1:$POLITE_PORT/__delay_proxy/count"
        M --site polite-s2000 --tool sitewatch \
            --settings "--config cfg/polite.toml, per-host 4, +$POLITE_DELAY s per request" \
            --rep "$rep" --parse "sitewatch:$WORK/out/polite/report.json" \
            --stdout "$WORK/out/polite.sitewatch.out" -- \
            "$ROOT/.venv/bin/sitewatch" audit "$SLOW" --config "$WORK/cfg/polite.toml" \
            --out "$WORK/out/polite" --as-of 2026-11-26 -q
        polite_count sitewatch "$rep"
        M --site polite-s2000 --tool linkinator \
            --settings "--recurse --concurrency 4, +$POLITE_DELAY s per request" --rep "$rep" \
            --parse "linkinator:$WORK/out/polite.linkinator.json" \
            --stdout "$WORK/out/polite.linkinator.json" -- \
            "$LK" "$SLOW" --recurse --concurrency 4 --format json
        polite_count linkinator "$rep"
    done
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=
fi

# ---------------------------------------------------------------------------- weekly re-run
# First run (empty history) against a re-run of the unchanged site with the same history
# database (conditional requests, cached outside verdicts), twice each, alternating; then,
# on s2000, one re-run after a page gained a broken link (it must be found).
rerun_pair() {  # SITE START [EXTRA-ARGS...]
    local site=$1 start=$2
    shift 2
    local db="$WORK/out/rerun-$site.db" out="$WORK/out/rerun-$site"
    grep -v -e '^db = ' -e '^\[history\]' "$WORK/cfg/$site.toml" > "$WORK/cfg/rerun-$site.toml"
    printf '[history]\ndb = "%s"\n' "$db" >> "$WORK/cfg/rerun-$site.toml"
    for rep in 1 2; do
        rm -rf "$out" "$WORK/out/rerun-$site.db" "$WORK/out/rerun-$site.db-wal" \
            "$WORK/out/rerun-$site.db-shm"
        for tool in "sitewatch first run" "sitewatch re-run"; do
            M --site "$site" --tool "$tool" --settings "--config cfg/rerun-$site.toml" \
                --rep "$rep" --parse "sitewatch:$out/report.json" --stdout "$out.out" -- \
                "$ROOT/.venv/bin/sitewatch" audit "$start" --config "$WORK/cfg/rerun-$site.toml" \
                --out "$out" --as-of 2026-11-26 -q "$@"
        done
    done
}
if [ "$WITH_RERUN" = 1 ]; then
    log "weekly re-run: first run vs re-run of the unchanged site (PostgreSQL manual, s2000 if generated)"
    rerun_pair pg "$BASE/pg/index.html" --scope "$BASE/pg/"
    if [ -f "$WORK/www/s2000/index.html" ] && [ -f "$WORK/cfg/s2000.toml" ]; then
        rerun_pair s2000 "$BASE/s2000/"
        # index.html gains a broken link: the re-run must parse it again and report it.
        changed=$WORK/www/s2000/index.html
        cp "$changed" "$WORK/out/rerun-index.html.orig"
        sed -i 's#</body>#<p><a href="/s2000/rerun-planted-broken.html">Ny sida</a></p></body>#' \
            "$changed"
        M --site s2000 --tool "sitewatch re-run, 1 page changed" \
            --settings "--config cfg/rerun-s2000.toml; index.html gained a link to rerun-planted-broken.html" \
            --rep 1 --parse "sitewatch:$WORK/out/rerun-s2000/report.json" \
            --stdout "$WORK/out/rerun-s2000.out" -- \
            "$ROOT/.venv/bin/sitewatch" audit "$BASE/s2000/" --config "$WORK/cfg/rerun-s2000.toml" \
            --out "$WORK/out/rerun-s2000" --as-of 2026-11-26 -q
        cp "$WORK/out/rerun-index.html.orig" "$changed"
    fi
fi

# ---------------------------------------------------------------------------- report
log "writing $RESULTS_MD"
"$PY" "$BENCH/report.py" --results "$RESULTS" --run-id "$RUN_ID" --out "$RESULTS_MD" \
    --work "$WORK" --elapsed "$(($(date +%s) - T0))" --polite "$POLITE"
log "done in $(($(date +%s) - T0)) s: $RESULTS_MD"

# ---------------------------------------------------------------------------- history write
# The history write of a big run on SQLite and on a PostgreSQL started for it (tests/pg.py).
if [ "${BENCH_HISTORY:-1}" = 1 ]; then
    log "history write: SQLite vs PostgreSQL"
    "$PY" "$BENCH/history_write.py" --both | tee "$WORK/history_write.txt"
fi

# ---------------------------------------------------------------------------- scale-out
# BENCH_SCALEOUT=1: 20 generated sites of 500 pages, Dramatiq workers, 1 vs 2 (a few
# minutes; bench/scaleout.sh, its own nginx and redis-server). Not in RESULTS.md: it prints
# its lines and writes bench/work/scaleout/results.txt.
if [ "${BENCH_SCALEOUT:-0}" = 1 ]; then
    log "scale-out: 1 worker vs 2"
    bash "$BENCH/scaleout.sh"
fi
