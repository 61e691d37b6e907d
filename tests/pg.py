"""A real PostgreSQL server on loopback for the tests, from Debian's `postgresql` package (which
scripts/test.sh installs): a throw-away cluster in a temporary folder, one database per test.

As root (CI), the server runs as the `postgres` user the package made, since PostgreSQL refuses
to run as root."""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .servers import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: scripts/test.sh installs Debian's postgresql")
    return found[-1]


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="liveness-pg-"))
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_postgres, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(_bin("initdb"), "-D", str(data), "-U", "liveness", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        self._options = options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://liveness@127.0.0.1:{self.port}/{database}"

    def new_database(self, template: str = "template0") -> str:
        """A fresh database, a copy of `template` (empty by default); its SQLAlchemy URL."""
        import psycopg
        name = f"t{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=liveness dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def template_database(self, make) -> str:
        """A database made once by `make(url)` for others to copy (`new_database(template=…)`);
        its name. `make` must close every connection to it: PostgreSQL copies no database in use."""
        url = self.new_database()
        make(url)
        return url.rsplit("/", 1)[1]

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server as an operator's `pg_ctl restart` would (`-m fast`: every connection is
        cut), stay down `down_seconds`, and start it again with the same options."""
        self.halt()
        time.sleep(down_seconds)
        self.resume()

    def halt(self) -> None:
        """Stop the server (`-m fast`: every connection is cut) until `resume()`."""
        self._run(_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the halted server again, on the same port with the same options."""
        self._run(_bin("pg_ctl"), "-D", str(self.root / "data"), "-o", self._options,
                  "-l", str(self.root / "log"), "-w", "start")
