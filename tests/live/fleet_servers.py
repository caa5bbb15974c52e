"""Real NATS (JetStream) and ClickHouse servers on loopback, for the fleet tests (issue 22).

Each server runs as a child process in a fresh temporary directory (its store, its config,
its log), on a free loopback port; :meth:`stop` ends it by its PID and removes the directory,
whatever happened. Both are Debian packages (.ci/run installs ``nats-server`` and
``clickhouse-server``); :func:`need` gives the reason to skip when one is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

NATS_BIN = shutil.which("nats-server") or "/usr/sbin/nats-server"
CLICKHOUSE_BIN = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"


def need(binary: str) -> "str | None":
    """Why a test cannot run without ``binary`` (None: it is there)."""
    if not os.access(binary, os.X_OK):
        return f"{os.path.basename(binary)} is not installed (Debian package; .ci/run installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: str, host: str = "127.0.0.1") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s: {_tail(log)}")


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-1500:]
    except OSError:
        return "(no log)"


class _Server:
    proc: "subprocess.Popen | None" = None
    dir: str = ""

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 5 s) by its PID; remove its directory."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""


class Nats(_Server):
    """``nats-server -js`` on 127.0.0.1:``port``; :meth:`restart` keeps the port and store."""

    def __init__(self, extra_conf: str = "", host: str = "127.0.0.1") -> None:
        self.dir = tempfile.mkdtemp(prefix="undertow-nats-")
        self.host = host
        self.port = free_port()
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as f:
            f.write(f'listen: "{host}:{self.port}"\n'
                    f'jetstream {{ store_dir: "{self.dir}/js", max_memory_store: 64MB, max_file_store: 256MB }}\n'
                    + extra_conf)
        self.log = os.path.join(self.dir, "nats.log")
        self.start()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([NATS_BIN, "-c", self.conf], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        try:
            _wait_port(self.port, self.proc, 10, self.log, self.host)
        except BaseException:
            self.stop()
            raise

    def pause(self) -> None:
        """Stop the server, keeping its directory (the stream's store) for :meth:`start`."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


_CH_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/log/server.log</log><errorlog>{dir}/log/error.log</errorlog>
        <console>0</console></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>5368709</mark_cache_size>
    <max_concurrent_queries>20</max_concurrent_queries>
    <timezone>UTC</timezone>
</yandex>
"""

_CH_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default>
        <readonly><readonly>1</readonly></readonly></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
        <profile>default</profile><quota>default</quota></default>
        <reader><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
        <profile>readonly</profile><quota>default</quota></reader></users>
    <quotas><default></default></quotas>
</yandex>
"""


class ClickHouse(_Server):
    """``clickhouse-server`` (18.16 on bookworm) on 127.0.0.1, HTTP interface on ``http_port``."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="undertow-ch-")
        try:
            os.chmod(self.dir, 0o755)
            for d in ("log", "data", "tmp", "user_files", "format_schemas"):
                os.mkdir(os.path.join(self.dir, d))
            self.http_port, tcp = free_port(), free_port()
            conf = os.path.join(self.dir, "config.xml")
            with open(conf, "w") as f:
                f.write(_CH_CONFIG.format(dir=self.dir, http=self.http_port, tcp=tcp))
            with open(os.path.join(self.dir, "users.xml"), "w") as f:
                f.write(_CH_USERS)
            self.log = os.path.join(self.dir, "log", "error.log")
            with open(os.path.join(self.dir, "stdout.log"), "ab") as out:
                self.proc = subprocess.Popen([CLICKHOUSE_BIN, f"--config-file={conf}"], cwd=self.dir, stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            _wait_port(self.http_port, self.proc, 60, self.log)
            end = time.monotonic() + 30
            while True:  # the port opens before the server answers queries
                try:
                    self.query("SELECT 1")
                    break
                except (OSError, urllib.error.URLError):
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def query(self, sql: str) -> str:
        """The text ClickHouse answers to ``sql`` (raises urllib.error.HTTPError with its message)."""
        req = urllib.request.Request(self.base, data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.read().decode()
