"""bench/measure.py finds a command's whole process tree from /proc, and samples it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")


def load_measure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_measure", ROOT / "bench" / "measure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A child that starts a grandchild, prints its pid once the grandchild's interpreter is up
# (it says so), and waits until its stdin closes.
TREE = """
import subprocess, sys
grandchild = subprocess.Popen(
    [sys.executable, "-c", "import sys; print(flush=True); sys.stdin.read()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
grandchild.stdout.readline()
print(grandchild.pid, flush=True)
sys.stdin.read()
grandchild.stdin.close()
grandchild.wait()
"""


def test_tree_holds_children_and_grandchildren_only() -> None:
    measure = load_measure()
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    child = subprocess.Popen(
        [sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        tree = measure.Tree(child.pid)
        assert sorted(tree.pids()) == sorted([child.pid, grandchild])
        mine = measure.Tree(os.getpid()).pids()
        assert {os.getpid(), child.pid, grandchild, other.pid} <= set(mine)
        assert measure._rss(grandchild) > 0
    finally:
        for p in (child, other):
            assert p.stdin is not None
            p.stdin.close()
            p.wait()
    # Gone: the tree is the root alone (its pid is listed whether or not it runs).
    assert tree.pids() == [child.pid]


def test_sampled_tree_rss_counts_every_process() -> None:
    measure = load_measure()
    child = subprocess.Popen(
        [sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    stop = threading.Event()
    peak, peak_pss = [0], [0]
    sampler = threading.Thread(target=measure.sample_tree, args=(child.pid, stop, peak, peak_pss))
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        both = measure._rss(child.pid) + measure._rss(grandchild)
        sampler.start()
        # Wait (at most 60 s) for a sample with both interpreters in it.
        deadline = time.monotonic() + 60
        while peak[0] < 0.9 * both and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        if sampler.is_alive():
            sampler.join()
    # Both interpreters counted (each is about half of ``both``; RSS moves a little).
    assert both > 0
    assert peak[0] >= 0.9 * both
