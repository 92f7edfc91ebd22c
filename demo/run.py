"""``make demo``: serve the bundled sample site on loopback, audit it, leave reports on disk.

The planted problems (demo/PLANTED.md) are the expected output, so this exits 0 when the
audit ran (``sitewatch audit`` itself exits 1 on them) and 2 when it could not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from demo.routes import start_demo_servers

AS_OF = "2026-11-26"
OUT = Path("out")


def sitewatch(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "crawler.cli", *args])


def main() -> int:
    OUT.mkdir(exist_ok=True)
    config = OUT / "demo-config.toml"
    with start_demo_servers() as demo:
        demo.write_config(config)
        print(f"sitewatch demo: serving the sample site at {demo.start_url}")
        print(f"sitewatch demo: config written to {config}")
        code = sitewatch("audit", "--config", str(config), "--as-of", AS_OF)
    if code not in (0, 1):
        print(f"sitewatch demo: the audit failed (exit {code})", file=sys.stderr)
        return code
    print()
    if sitewatch("send", "--config", str(config)) not in (0, 1):
        return 2
    print(f"\nsitewatch demo: open {OUT / 'report.html'} in a browser;")
    print(f"sitewatch demo: the editors' emails are in {OUT / 'outbox'} (.eml files).")
    print("sitewatch demo: `sitewatch audit` exits 1 on these planted problems; the demo exits 0.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
