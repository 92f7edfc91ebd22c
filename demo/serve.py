"""Serve the demo site until Ctrl-C: ``python -m demo.serve [--port N] [--write-config PATH]``.

Starts the main site on 127.0.0.1 and the two stand-in outside sites on 127.0.0.2 and
127.0.0.3 (see ``demo.routes``), prints their URLs and, with ``--write-config``, writes a
filled-in sitewatch config for auditing the running demo.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from demo.routes import AS_OF, start_demo_servers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.serve",
        description="Serve the sitewatch demo site (Umeå kommun, Internationellt arbete) "
        "on 127.0.0.1 with stand-in outside sites on 127.0.0.2 and 127.0.0.3.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port for all three servers (default 0: a free port each)",
    )
    parser.add_argument(
        "--write-config",
        metavar="PATH",
        help="write the demo's sitewatch config, filled in with these URLs, to PATH",
    )
    args = parser.parse_args(argv)

    try:
        demo = start_demo_servers(args.port)
    except OSError as exc:
        print(f"demo.serve: cannot start the servers: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"Demo site (crawl start): {demo.start_url}")
        print(f"Main site:               {demo.main.base_url}/")
        print(f"EU office + SKL/SKR:     {demo.ext1.base_url}/   (ext1)")
        print(f"Twin-town sites:         {demo.ext2.base_url}/   (ext2)")
        print("Watched prefixes:        " + ", ".join(demo.watched))
        if args.write_config:
            path = demo.write_config(args.write_config)
            print(f"Config written to:       {path}")
        print(f"Audit with --as-of {AS_OF.isoformat()} for the results in demo/PLANTED.md.")
        print("Serving until Ctrl-C ...", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
        print("\nStopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
