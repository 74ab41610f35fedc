"""A real PostgreSQL server for a test: its own cluster (initdb) in a temp dir, on a free port of
127.0.0.1, started and stopped with pg_ctl. Debian's `postgresql` package provides the binaries
(scripts/setup-postgres.sh). PostgreSQL refuses to run as root, so when the suite runs as root
the cluster belongs to the unprivileged `postgres` user (created by the package) and every
pg_ctl call runs as that user through `runuser`.

``stop``/``start`` keep the same data directory and port, so a test can take the database away
in the middle of a call and bring it back.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .livekit_server import free_port

START_TIMEOUT_S = 30


def postgres_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise FileNotFoundError("PostgreSQL server binaries not found: run `bash scripts/setup-postgres.sh`")


def _run_as() -> list[str]:
    """The command prefix that drops root (postgres will not run as uid 0)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
        user = "postgres"
    except KeyError:
        user = "nobody"
    return ["runuser", "-u", user, "--"]


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    log_path: Path
    bin_dir: Path

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*_run_as(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)

    def start(self) -> None:
        # -k: the unix socket goes to the data dir (the system's /var/run/postgresql may not exist)
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off"
        self._pg_ctl("-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_path), "-o", opts, "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as when the database goes away."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def running(self) -> bool:
        return subprocess.run([*_run_as(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def destroy(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="voice-agent-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    prefix = _run_as()
    if prefix:
        user = prefix[2]
        os.chmod(root, 0o755)
        shutil.chown(data_dir, user=user, group=pwd.getpwnam(user).pw_gid)
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=120)
    server = PostgresServer(data_dir=data_dir, port=free_port(), log_path=data_dir / "server.log",
                            bin_dir=bin_dir)
    server.start()
    return server
