"""The processes of bench/peer/run.py: a private Neo4j, the servers, their CPU time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_neo4j(stack: ExitStack, keep: bool) -> tuple[str, Path]:
    """A private copy of tests/neo4j/ (built server included), started; stopped on exit."""
    home = Path(tempfile.mkdtemp(prefix="c360-peer-neo4j-")) / "neo4j"
    home.mkdir()
    source = ROOT / "tests" / "neo4j"
    for name in ("server", "pom.xml", "src", "target"):
        if (source / name).is_dir():
            shutil.copytree(source / name, home / name, symlinks=True)
        elif (source / name).exists():
            shutil.copy2(source / name, home / name)
    env = {**os.environ, "NEO4J_TEST_HEAP": os.environ.get("NEO4J_TEST_HEAP", "2g")}
    env.pop("NEO4J_TEST_PORT", None)
    started = subprocess.run(
        [str(home / "server"), "start"], env=env, check=True, stdout=subprocess.PIPE, text=True
    )
    uri = started.stdout.strip().splitlines()[-1]
    if keep:
        print(f"private Neo4j kept at {uri} ({home}); stop it with {home}/server stop")
    else:
        stack.callback(shutil.rmtree, home.parent, ignore_errors=True)  # after the stop
        stack.callback(subprocess.run, [str(home / "server"), "stop"], check=False)
    return uri, home


def neo4j_pid(home: Path | None, uri: str) -> int | None:
    """The Java process serving `uri`: the private server's pid file, else found by port."""
    if home is not None:
        return int((home / ".run" / "neo4j.pid").read_text())
    port = uri.rsplit(":", 1)[-1]
    found = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    marker = "pid="
    if marker in found.stdout:
        return int(found.stdout.split(marker, 1)[1].split(",", 1)[0])
    return None


def start(
    stack: ExitStack, command: list[str], env: dict[str, str], port: int, ready_path: str, name: str
) -> subprocess.Popen[bytes]:
    """A server process, once it answers HTTP on `port`; stopped when `stack` closes."""
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    stack.callback(stop, process)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2):
                return process
        except urllib.error.HTTPError:
            return process  # it answers
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start on port {port}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
