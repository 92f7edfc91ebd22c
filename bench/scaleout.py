"""Scale-out benchmark: N generated sites audited by Dramatiq workers, 1 worker vs 2.

Run by bench/scaleout.sh (which generates the site, starts nginx on 127.0.0.10.. and
redis-server); this script writes the deployment, enqueues one message per site, starts
``sitewatch worker --processes W`` and waits until every site has a finished run in the
history, for each W. Throughput = sites / (last run's end - first run's start), both read
from the history (so worker start-up is not counted). Prints one JSON line per W and
the ratio.

    python bench/scaleout.py --work DIR --port P --redis URL [--sites 20] [--pages 500]
        [--workers 1,2] [--delay 0] [--per-host 4] [--history-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_deployment(args: argparse.Namespace, work: Path, w: int) -> Path:
    run_dir = work / f"w{w}"
    sites = run_dir / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    for i in range(args.sites):
        host = f"127.0.0.{10 + i}"
        (sites / f"s{i:02d}.toml").write_text(
            f'[site]\nname = "w{w}site{i:02d}"\n'
            f'start_urls = ["http://{host}:{args.port}/s{args.pages}/index.html"]\n'
            f'scopes = ["http://{host}:{args.port}/s{args.pages}/"]\n'
            f'[report]\nout_dir = "{run_dir / "out" / f"s{i:02d}"}"\n',
            encoding="utf-8",
        )
    history = f'url = "{args.history_url}"' if args.history_url else f'db = "{run_dir / "h.db"}"'
    config = run_dir / "deploy.toml"
    config.write_text(
        f"""[schedule]
backend = "dramatiq"
sites = ["sites/*.toml"]

[worker]
redis_url = "{args.redis}"
queue = "bench{w}x{int(time.time())}"

[crawl]
max_pages = 100000
max_depth = 1000
delay = {args.delay}
per_host_concurrency = {args.per_host}
check_external = false

[report]
formats = ["json"]

[history]
{history}

[email]
from_addr = "sitewatch@bench.example"
outbox = "{run_dir / "outbox"}"
""",
        encoding="utf-8",
    )
    return config


def finished(config: Path) -> list:  # RunRow
    from crawler.app.sites import load_sites
    from crawler.config import load_config
    from crawler.history.runs import open_store

    with open_store(load_config(config)) as store:
        rows = [r for site in load_sites(config) for r in store.runs(site, limit=5)]
    return [r for r in rows if r.status in ("complete", "incomplete")]


def measure(args: argparse.Namespace, work: Path, w: int) -> dict:
    from crawler.config import load_config
    from crawler.history.runs import open_store
    from crawler.worker.actor import declare
    from crawler.worker.broker import make_broker
    from crawler.worker.enqueue import enqueue_period

    config = write_deployment(args, work, w)
    cfg = load_config(config)
    actor = declare(make_broker(cfg), str(config), cfg)
    period = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with open_store(cfg) as store:
        sent = enqueue_period(str(config), period, lambda s, p: actor.send(s, p), store)
    assert len(sent) == args.sites, sent
    log = (work / f"w{w}" / "workers.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crawler.app.cli",
            "worker",
            "--config",
            str(config),
            "--processes",
            f"{w}",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while len(runs := finished(config)) < args.sites:
            if proc.poll() is not None:
                raise SystemExit(f"the workers ended (see {log.name})")
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        log.close()
    start = min(r.started_at for r in runs)
    end = max(r.finished_at for r in runs)
    seconds = (end - start).total_seconds()
    pages = sum(r.pages_crawled for r in runs)
    return {
        "workers": w,
        "sites": len(runs),
        "pages": pages,
        "complete": sum(r.status == "complete" for r in runs),
        "seconds": round(seconds, 1),
        "sites_per_hour": round(len(runs) * 3600 / seconds, 1),
        "pages_per_s": round(pages / seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--redis", required=True)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--per-host", type=int, default=4)
    ap.add_argument("--history-url", default="")
    args = ap.parse_args()
    results = [measure(args, args.work, int(w)) for w in args.workers.split(",")]
    for r in results:
        print(json.dumps(r))
    if len(results) >= 2:
        ratio = results[-1]["pages_per_s"] / results[0]["pages_per_s"]
        print(
            f"scale-out: {results[-1]['workers']} workers vs {results[0]['workers']}: "
            f"throughput x{ratio:.2f} ({results[0]['seconds']} s -> {results[-1]['seconds']} s "
            f"for {args.sites} sites of {args.pages} pages)"
        )


if __name__ == "__main__":
    main()
