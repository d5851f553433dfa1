"""`c360 serve` as a subprocess on the embedded store, for crash tests: killed with SIGKILL
at moments the test chooses and started again on the same data dir and port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.api.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 30.0


class ServeProcess:
    """One port and data dir, served by one run after another. Each run has a session of
    its own, shared with the copier it starts, so that a kill can take the server alone
    (the copier outlives it) or its whole process group."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        """`env`: the settings (`C360_*`) besides the store and the data dir."""
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **env,
            "C360_STORE": "embedded",
            "C360_DATA_DIR": str(self.data_dir),
        }
        self.logs = tmp_path
        self.runs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        """a kill (from any thread) and a start do not interleave"""

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The latest run."""
        return self.runs[-1]

    def start(self) -> None:
        """Start a run and wait until it answers `/readyz`."""
        command = [sys.executable, "-c", "from graph_api.cli import app; app()"]
        with self._lock, (self.logs / f"serve-{len(self.runs)}.log").open("wb") as log:
            self.runs.append(
                subprocess.Popen(
                    [*command, "serve", "--port", str(self.port)],
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        process = self.process
        deadline = time.monotonic() + READY_SECONDS
        while True:
            assert process.poll() is None, "c360 serve exited\n" + self.log()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "c360 serve did not become ready\n" + self.log()
            time.sleep(0.05)

    def kill(self, process: subprocess.Popen[bytes], *, group: bool = False) -> None:
        """SIGKILL a run (with its process group) unless it is dead already."""
        with self._lock:
            if process.poll() is None:
                if group:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.send_signal(signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        """Stop the latest run, then whatever is left in the sessions of all runs (a copier
        whose server was killed alone)."""
        if self.runs and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in in_sessions({p.pid for p in self.runs}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        """What the latest run printed."""
        return (self.logs / f"serve-{len(self.runs) - 1}.log").read_text(errors="replace")


def in_sessions(sessions: set[int]) -> list[int]:
    """The processes still running in any of `sessions`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, _, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if state not in "ZX" and int(session) in sessions:
            found.append(int(entry.name))
    return found
