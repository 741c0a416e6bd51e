"""Tuning on many machines, against a real PostgreSQL server that these tests start themselves
(``initdb`` + ``pg_ctl`` on a free local port, in a temporary folder, stopped afterwards).

Where no server binaries can be found the tests skip with the reason; CI installs Debian's
``postgresql`` package, so it is never such a place. The long cases (several tuners, a kill,
Dask) are marked ``slow``: ``tox -e slow``, which CI runs too.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import optuna
import pytest

from flowbench.storage import open_storage

PASSWORD = "fb-secret"
SMOKE = ["--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,realnvp", "--bases",
         "normal"]


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A throw-away PostgreSQL server: ``url(db)`` for SQLAlchemy, ``create(db)`` a database."""

    def __init__(self, bindir: Path):
        self.bindir, self.port = bindir, _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="flowbench-pg-"))
        self.root.chmod(0o755)
        self.data, self.log = self.root / "data", self.root / "server.log"
        # the server refuses to run as root: run it as the package's (or an existing) user
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            if user is None or shutil.which("runuser") is None:
                _unavailable("running as root with no unprivileged user to start PostgreSQL")
            shutil.chown(self.root, user)
            self.prefix = ["runuser", "-u", user, "--"]

    def _run(self, *args: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, check=True,
                              timeout=120, **options)

    def start(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self.prefix:
            shutil.chown(password_file, self.prefix[2])
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "flowbench",
                  f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
                  options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                        "fast", "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://flowbench:{password}@127.0.0.1:{port or self.port}/{database}"

    def create(self) -> str:
        """A fresh, empty database; its URL."""
        from sqlalchemy import create_engine, text

        name = f"t{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _unavailable(reason: str) -> None:
    """Skip, except where PostgreSQL is required (CI sets FLOWBENCH_REQUIRE_POSTGRES)."""
    if os.environ.get("FLOWBENCH_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the postgres extra (psycopg) is not installed")
    bindir = _binaries()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
                     "/usr/lib/postgresql/*/bin; install Debian's postgresql package")
    server = Server(bindir)
    try:
        server.start()
    except subprocess.CalledProcessError as error:
        server.stop()
        raise AssertionError(f"PostgreSQL did not start: {error.stderr}") from None
    yield server
    server.stop()


def flowbench(*args: str, timeout: float = 600, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowbench.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url)).trials


STUDIES = [f"smoke/two_moons/{flow}/normal" for flow in ("nice", "realnvp")]


@pytest.mark.slow
def test_two_tuners_start_at_once_on_a_fresh_database(postgres: Server) -> None:
    url = postgres.create()
    args = ["tune", *SMOKE, "--trials", "5", "--steps", "200", "--storage", url, "-j", "2"]
    processes = [start(*args) for _ in range(2)]
    for process in processes:
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    workers = set()
    for name in STUDIES:
        found = trials(url, name)
        assert [t.number for t in found] == list(range(5))  # none lost or numbered twice
        assert all(t.state != optuna.trial.TrialState.RUNNING for t in found)
        assert len(found) == 5, [t.state for t in found]
        workers |= {t.user_attrs["worker"] for t in found}
        params = [tuple(sorted(t.params.items())) for t in found]
        assert len(set(params)) == len(params)  # no trial evaluated twice
    assert len({worker.rsplit(":", 1)[1] for worker in workers}) >= 2


@pytest.mark.slow
def test_a_killed_tuner_run_again_ends_at_exactly_the_trials(postgres: Server) -> None:
    url = postgres.create()
    args = ["tune", *SMOKE, "--trials", "4", "--steps", "400", "--pruner", "none",
            "--storage", url, "-j", "2"]
    process = start(*args)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            states = [t.state for name in STUDIES for t in trials(url, name)]
        except Exception:  # noqa: BLE001 - the schema or studies are still being created
            states = []
        if optuna.trial.TrialState.COMPLETE in states and \
                optuna.trial.TrialState.RUNNING in states:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    again = flowbench(*args)
    assert again.returncode == 0, again.stderr
    failed = 0
    for name in STUDIES:
        found = trials(url, name)
        assert len(found) == 4 and [t.number for t in found] == list(range(4))
        assert optuna.trial.TrialState.RUNNING not in [t.state for t in found]
        interrupted = [t for t in found if t.state == optuna.trial.TrialState.FAIL]
        assert all("ended before the trial finished" in t.user_attrs["failed_because"]
                   for t in interrupted)
        failed += len(interrupted)
    assert failed >= 1


@pytest.mark.slow
def test_a_tuned_run_uses_the_stored_best_settings(postgres: Server, tmp_path: Path) -> None:
    url = postgres.create()
    args = ["--suite", "smoke", "--datasets", "two_moons", "--flows", "glow", "--bases",
            "normal"]
    tuned = flowbench("tune", *args, "--trials", "3", "--steps", "40", "--storage", url,
                      "-j", "1")
    assert tuned.returncode == 0, tuned.stderr
    best = optuna.load_study(study_name="smoke/two_moons/glow/normal",
                             storage=open_storage(url)).best_params
    run = flowbench("run", *args, "--steps", "40", "--tuned", "--storage", url, "-j", "1",
                    "--no-report", "--no-measure", "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    import json

    record = json.loads((tmp_path / "run" / "cells.jsonl").read_text().splitlines()[0])
    assert record["train"]["lr"] == pytest.approx(best["train.lr"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["tuning"]["storage"] == url.replace(PASSWORD, "***")  # never the password
    assert PASSWORD not in (tmp_path / "run" / "config.json").read_text()
    assert PASSWORD not in tuned.stdout + tuned.stderr + run.stdout + run.stderr


@pytest.mark.slow
def test_the_dask_backend_with_a_postgres_storage(postgres: Server, tmp_path: Path) -> None:
    """As README's "many machines" section: a scheduler, workers, one database."""
    pytest.importorskip("dask.distributed")
    url = postgres.create()
    port = _free_port()
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=tmp_path)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                               f"tcp://127.0.0.1:{port}", "--nworkers", "2", "--nthreads", "1",
                               "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        result = flowbench("tune", *SMOKE, "--trials", "2", "--steps", "30", "--backend",
                           "dask", "--scheduler", f"tcp://127.0.0.1:{port}", "--storage", url,
                           timeout=600)
        assert result.returncode == 0, result.stderr
        for name in STUDIES:
            found = trials(url, name)
            assert len(found) == 2
            assert all(t.state != optuna.trial.TrialState.RUNNING for t in found)
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=60)


@pytest.mark.parametrize("case", ["unreachable", "password", "no database"])
def test_a_database_that_cannot_be_used_is_exit_2_within_seconds(postgres: Server,
                                                                 case: str) -> None:
    url = {"unreachable": postgres.url("postgres", port=_free_port()),
           "password": postgres.url("postgres", password="wrong"),
           "no database": postgres.url("nowhere")}[case]
    started = time.time()
    result = flowbench("tune", *SMOKE, "--trials", "1", "--storage", url)
    assert time.time() - started < 60
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "host 127.0.0.1" in result.stderr
    assert {"unreachable": "Connection refused", "password": "password authentication failed",
            "no database": 'database "nowhere" does not exist'}[case] in result.stderr
    assert PASSWORD not in result.stderr and "wrong" not in result.stderr  # never print it


def test_a_missing_driver_names_the_extra(tmp_path: Path) -> None:
    """With psycopg not importable, a postgresql:// storage is exit 2 naming the extra."""
    blocker = tmp_path / "blocked" / "psycopg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('psycopg is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "blocked"))
    result = flowbench("tune", *SMOKE, "--trials", "1", "--storage",
                       "postgresql://flowbench@127.0.0.1/x", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'flowbench-nf[postgres]'" in result.stderr
