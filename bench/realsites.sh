#!/usr/bin/env bash
# Real-site validation (issue 16): sitewatch on Debian documentation packages nobody here
# wrote, served by nginx on loopback, every finding checked against the files on disk.
# See bench/REALSITES.md.
#
#   bash bench/realsites.sh            # all sites, about 2-3 minutes on 2 cores
#   REALSITES_SITES="pg lang3" bash bench/realsites.sh
#
# 1. installs nginx-light and the doc packages with apt-get when missing;
# 2. serves them with nginx (bench/realsites.nginx.conf.in) on 127.0.0.1 on a free port
#    from bench/work/realsites/www/<site> -> /usr/share/doc/... (symlinks are followed);
# 3. runs `sitewatch audit` per site (reports in bench/work/realsites/<site>/);
# 4. runs bench/verify_findings.py over the reports: summary table on stdout, JSON in
#    bench/work/realsites/summary.json, every classified finding in <site>/verified.json.
#
# Knobs (environment, defaults in brackets):
#   REALSITES_SITES ["pg pydoc lang3 jdk jdk-root"]  which sites to run
#   REALSITES_PORT [a free port]                     nginx port on 127.0.0.1
#   REALSITES_ROOT_MAX_PAGES [300]                   page cap for jdk-root (see below)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work/realsites
PY=$ROOT/.venv/bin/python
SW=$ROOT/.venv/bin/sitewatch
SITES=${REALSITES_SITES:-"pg pydoc lang3 jdk jdk-root"}
ROOT_MAX=${REALSITES_ROOT_MAX_PAGES:-300}
AS_OF=2026-12-01
T0=$(date +%s)

log() { printf '[realsites %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

# name | Debian package | HTML tree on disk | served as /<dir>/ | start path | max pages (0: none)
# jdk-root starts at the JDK's meta-refresh root (index.html -> api/index.html): before the
# fix the crawl stops there after 1 page; capped so that after the fix it does not crawl
# the 10,000 pages a second time (jdk does that from api/index.html).
SITE_TABLE="
pg|postgresql-doc-15|/usr/share/doc/postgresql-doc-15/html|pg|index.html|0
pydoc|python3.11-doc|/usr/share/doc/python3.11/html|pydoc|index.html|0
lang3|libcommons-lang3-java-doc|/usr/share/doc/libcommons-lang3-java/api|lang3|index.html|0
jdk|openjdk-17-doc|/usr/share/doc/openjdk-17-doc|jdk|api/index.html|0
jdk-root|openjdk-17-doc|/usr/share/doc/openjdk-17-doc|jdk|index.html|$ROOT_MAX
"
site_field() { # site_field NAME N
    local line
    line=$(printf '%s\n' "$SITE_TABLE" | grep "^$1|") || { echo "realsites: unknown site $1" >&2; exit 2; }
    printf '%s\n' "$line" | cut -d'|' -f"$2"
}

[ -x "$SW" ] || { echo "realsites: $SW missing; run 'make venv' first" >&2; exit 2; }
mkdir -p "$WORK/www" "$WORK/nginx/tmp"

# ---------------------------------------------------------------------------- installs
missing=""
command -v nginx >/dev/null || missing="nginx-light"
for s in $SITES; do
    doc=$(site_field "$s" 3)
    [ -f "$doc/$(site_field "$s" 5)" ] || missing="$missing $(site_field "$s" 2)"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "realsites: missing$missing; install them as root (apt-get install$missing)" >&2
        exit 2
    fi
    log "installing$missing (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# ---------------------------------------------------------------------------- nginx
PORT=${REALSITES_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE=http://127.0.0.1:$PORT
for s in $SITES; do
    ln -sfn "$(site_field "$s" 3)" "$WORK/www/$(site_field "$s" 4)"
done
sed -e "s#@WORK@#$WORK#g" -e "s#@PORT@#$PORT#g" "$BENCH/realsites.nginx.conf.in" \
    > "$WORK/nginx/nginx.conf"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
cleanup() { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; }
trap cleanup EXIT
first=$(set -- $SITES; echo "$1")
probe="$BASE/$(site_field "$first" 4)/$(site_field "$first" 5)"
for _ in $(seq 50); do
    curl -sf -o /dev/null "$probe" && break
    sleep 0.1
done
curl -sf -o /dev/null "$probe" || { echo "realsites: nginx did not start (port $PORT)" >&2; exit 2; }
log "nginx serving $WORK/www on $BASE"

# ---------------------------------------------------------------------------- audits
# Loopback limits raised (the defaults stay polite for real sites); no page cap, depth or
# URL-shape limit, so that the crawl is complete. Links leaving 127.0.0.1 are not checked
# (no internet here): they are counted as outside links by the verifier.
cat > "$WORK/cfg.toml" <<'EOF'
[crawl]
max_pages = 1000000
max_depth = 1000
max_pages_per_pattern = 1000000
concurrency = 16
per_host_concurrency = 16
EOF
reports=()
meta="{"
for s in $SITES; do
    pkg=$(site_field "$s" 2)
    dir=$(site_field "$s" 4)
    start="$BASE/$dir/$(site_field "$s" 5)"
    max=$(site_field "$s" 6)
    version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo unknown)
    cap=()
    [ "$max" != 0 ] && cap=(--max-pages "$max")
    rm -rf "${WORK:?}/$s"
    log "$s ($pkg $version): sitewatch audit $start"
    t=$(date +%s.%N)
    rc=0
    "$SW" audit "$start" --scope "$BASE/$dir/" --config "$WORK/cfg.toml" \
        --exclude '^https?://(?!127\.0\.0\.1[:/])' --out "$WORK/$s" --no-history \
        --format json,html --as-of "$AS_OF" -q "${cap[@]}" > "$WORK/$s.log" 2>&1 || rc=$?
    secs=$("$PY" -c "import sys; print(round($(date +%s.%N) - $t, 1))")
    if [ "$rc" -gt 1 ] || [ ! -f "$WORK/$s/report.json" ]; then
        echo "realsites: sitewatch failed on $s (exit $rc); see $WORK/$s.log" >&2
        tail -20 "$WORK/$s.log" >&2
        exit 2
    fi
    log "$s: done in ${secs}s (exit $rc)"
    reports+=("$s=$WORK/$s/report.json")
    [ "$meta" = "{" ] || meta="$meta,"
    meta="$meta\"$s\": {\"package\": \"$pkg\", \"version\": \"$version\", \"start\": \"/$dir/$(site_field "$s" 5)\", \"max_pages\": $max, \"seconds\": $secs, \"exit\": $rc, \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\"}"
done
printf '%s}\n' "$meta" > "$WORK/meta.json"

# ---------------------------------------------------------------------------- verify
log "checking every finding against the files on disk"
"$PY" "$BENCH/verify_findings.py" --www "$WORK/www" --meta "$WORK/meta.json" \
    --summary "$WORK/summary.json" --details "${reports[@]}"
log "summary: $WORK/summary.json"
