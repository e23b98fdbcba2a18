"""``crowdloop serve`` in a child process on a free loopback port: what load tests and fault tests
run against (a real server, killed for real)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

_TOKEN_LINE = re.compile(r"admin token .*?: (\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``crowdloop serve --db URL --workers N`` on 127.0.0.1; ``admin_token`` is the token printed on
    first start (None when the database already had its admin)."""

    def __init__(
        self,
        url: str,
        *,
        workers: int = 1,
        options: tuple[str, ...] = (),
        log: Path | None = None,
        startup_seconds: float = 60.0,
    ):
        self.url = url
        self.workers = workers
        self.options = options
        self.startup_lines: list[str] = []
        """What ``crowdloop serve`` printed before it served (tokens, the demo project)."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_token: str | None = None
        self._log = log
        self._startup = startup_seconds
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerProcess:
        command = [sys.executable, "-c", "from crowdloop.cli import app; app()", "serve", "--db", self.url]
        command += ["--port", str(self.port), "--workers", str(self.workers), *self.options]
        output = open(self._log or os.devnull, "w")  # noqa: SIM115  (kept open while the server runs)
        self._process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a kill reaches every worker
            env={**os.environ, "COLUMNS": "200"},
        )
        deadline = time.monotonic() + self._startup
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.startup_lines.append(line.rstrip("\n"))
            match = _TOKEN_LINE.search(line)
            if match:
                self.admin_token = match.group(1)
            if line.startswith("serving") or time.monotonic() > deadline:
                break
        threading.Thread(target=self._process.stderr.read, daemon=True).start()  # keep the pipe drained
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited with {self._process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/openapi.json", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer on {self.base_url} within {self._startup} s")

    @property
    def process_group(self) -> int:
        """The process group of the server and its workers (its own session)."""
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL the server and its workers: no shutdown, no flush."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
