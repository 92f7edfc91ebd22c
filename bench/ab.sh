#!/usr/bin/env bash
# Compare two versions of sitewatch, alternating round by round (see bench/README.md).
#
#   bash bench/ab.sh pg N OLD [NEW]      first runs of the PostgreSQL manual
#   bash bench/ab.sh rerun N OLD [NEW]   s2000: a first run, then the re-run of the unchanged
#                                        site, each round from an empty history
#
# OLD (and NEW) are commits or source trees; NEW defaults to this checkout. Needs the sites
# of a `make bench` run (bench/work, with s2000 for "rerun"); starts nginx on
# 127.0.0.1-4:$BENCH_PORT [18080] unless something answers there already. Prints each
# version's median wall time (and the re-run's ratio). Run it on an otherwise idle machine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/bench/work
PY=$ROOT/.venv/bin/python
PORT=${BENCH_PORT:-18080}
kind=${1:?pg or rerun}
rounds=${2:?number of rounds}
old=${3:?old commit or tree}
new=${4:-$ROOT}
[ -f "$WORK/cfg/pg.toml" ] || { echo "ab: run 'make bench' first (bench/work)" >&2; exit 2; }
[ "$kind" = pg ] || [ -f "$WORK/cfg/s2000.toml" ] || { echo "ab: no s2000 in bench/work" >&2; exit 2; }
TMP=$(mktemp -d)
cleanup() {
    [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null
    for t in "$TMP"/tree-*; do [ -d "$t" ] && git -C "$ROOT" worktree remove --force "$t"; done
    rm -rf "$TMP"
}
trap cleanup EXIT

tree() {  # commit or directory -> a source tree, byte-compiled
    local dir=$1
    if [ ! -d "$1" ]; then
        dir=$TMP/tree-$2
        git -C "$ROOT" worktree add --detach "$dir" "$1" >/dev/null 2>&1
    fi
    "$PY" -m compileall -q "$dir/crawler" "$dir/checks" "$dir/reports" >/dev/null
    echo "$dir"
}
trees=("$(tree "$old" 1)" "$(tree "$new" 2)")

if ! curl -sf -o /dev/null "http://127.0.0.1:$PORT/pg/index.html"; then
    sed -e "s#@WORK@#$WORK#g" -e "s#@PORT@#$PORT#g" "$ROOT/bench/nginx.conf.in" > "$TMP/nginx.conf"
    mkdir -p "$WORK/nginx/tmp"
    nginx -c "$TMP/nginx.conf" -p "$WORK/nginx" &
    NGINX_PID=$!
    sleep 0.5
fi

audit() {  # tree tag site-args... : one audit, its wall time in ms on stdout
    local t=$1 tag=$2
    shift 2
    local start end
    start=$(date +%s%N)
    # The command line moved to crawler/app/ (issue 17); an older base tree has crawler/cli.py.
    local cli=crawler.app.cli
    [ -f "$t/crawler/app/cli.py" ] || cli=crawler.cli
    # From $TMP: `python -m` puts the working directory first on sys.path.
    (cd "$TMP" && PYTHONPATH=$t "$PY" -m "$cli" audit "$@" --config "$TMP/$tag.toml" \
        --out "$TMP/out-$tag" --as-of 2026-11-26 -q >/dev/null 2>&1) || true
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}
base=http://127.0.0.1:$PORT
for round in $(seq "$rounds"); do
    for i in 0 1; do
        tag=v$((i + 1))
        site=pg
        [ "$kind" = rerun ] && site=s2000
        rm -rf "$TMP/$tag.db"* "$TMP/out-$tag"
        sed "s#^db = .*#db = \"$TMP/$tag.db\"#" "$WORK/cfg/$site.toml" > "$TMP/$tag.toml"
        if [ "$kind" = pg ]; then
            echo "$tag first $(audit "${trees[$i]}" $tag "$base/pg/index.html" --scope "$base/pg/")"
        else
            echo "$tag first $(audit "${trees[$i]}" $tag "$base/s2000/")"
            echo "$tag rerun $(audit "${trees[$i]}" $tag "$base/s2000/")"
        fi
    done
done | tee "$TMP/times.txt" >&2
"$PY" - "$TMP/times.txt" "$old" "$new" <<'EOF'
import collections
import statistics
import sys

times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tag, kind, ms = line.split()
    times[tag, kind].append(int(ms) / 1000)
for tag, name in (("v1", sys.argv[2]), ("v2", sys.argv[3])):
    first = statistics.median(times[tag, "first"])
    out = f"{name}: first run {first:.3f} s"
    if times[tag, "rerun"]:
        rerun = statistics.median(times[tag, "rerun"])
        out += f", re-run {rerun:.3f} s, ratio of medians {first / rerun:.2f}"
    print(f"{out} ({len(times[tag, 'first'])} rounds)")
EOF
