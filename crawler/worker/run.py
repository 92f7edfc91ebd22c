"""``sitewatch worker``: Dramatiq workers taking ``audit_site`` messages from Redis.

One process (``--processes 1``) runs a ``dramatiq.Worker`` itself: ``--threads`` worker
threads (default 1: each audit is a child process anyway) and a prefetch of as many
messages, so a busy worker never holds a second audit back from an idle one. With
``--processes N`` this process starts N such processes and starts again any that ends
while the worker is not being stopped. SIGTERM/SIGINT: the running audits are stopped
(their runs recorded crashed, their messages retried later) and the workers end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from crawler.app import processes as child_processes
from crawler.config import load_config

log = logging.getLogger("sitewatch.worker")

LOG_FORMAT = "%(asctime)s %(process)d %(name)s: %(message)s"


def run_workers(config_path: str, *, processes: int = 1, threads: int = 1) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if processes == 1:
        return serve(config_path, threads)
    return _supervise(config_path, processes, threads)


def serve(config_path: str, threads: int) -> int:
    """Run one Dramatiq worker in this process until SIGTERM/SIGINT."""
    from dramatiq import Worker

    from crawler.worker.actor import declare
    from crawler.worker.broker import make_broker

    cfg = load_config(config_path)
    broker = make_broker(cfg)
    declare(broker, config_path, cfg)
    worker = Worker(broker, queues={cfg.worker.queue}, worker_threads=threads)
    worker.queue_prefetch = threads
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        log.info("signal %s: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.start()
    log.info("worker ready: queue %s, %d thread(s), pid %d", cfg.worker.queue, threads, os.getpid())
    stopping.wait()
    child_processes.stop_commands()
    worker.stop(timeout=60_000)
    log.info("worker stopped")
    return 0


def _supervise(config_path: str, processes: int, threads: int) -> int:
    cmd = [sys.executable, "-m", "crawler.app.cli", "worker", "--config", config_path]
    cmd += ["--processes", "1", "--threads", str(threads)]

    def restarted(pid: int, status: int) -> None:
        log.error("worker process %d ended (status %d); starting another", pid, status)

    return child_processes.supervise(cmd, processes, restarted)
