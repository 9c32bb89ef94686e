"""No command prints a password, in any of the three forms libpq accepts it in.

Every ``genesis`` command runs against the test server (trust authentication: the password
is sent and ignored) with the password before ``@``, as ``?password=`` and in a libpq
keyword/value string; its output, its errors and its log lines are searched for the
password as typed and URL-encoded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.cli import main
from genesis.database import DatabaseURL
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.test_url import assert_no_secret, password_forms

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent
FORMS = ("userinfo", "query", "keywords")


def with_password(url: DatabaseURL, form: str, *, run: str | None = None,
                  port: int | None = None) -> str:
    """The test server's URL for ``run``, its password written in ``form``."""
    return password_forms(url.host, port or url.port or 5432, url.user, url.database,
                          run or url.run)[form]


class Outputs:
    """Runs commands in-process, keeping everything they print and log."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
        self._capsys, self._caplog = capsys, caplog
        self.seen: list[str] = []

    def run(self, *args: str) -> int:
        """Run ``genesis ARGS``; return its exit code."""
        with self._caplog.at_level(logging.DEBUG):
            code = main(["-v", *args])
        out, err = self._capsys.readouterr()
        self.seen += [out, err, self._caplog.text]
        self._caplog.clear()
        return code


@pytest.mark.parametrize("form", FORMS)
def test_no_command_prints_the_password(form: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base = new_pg_run_url()
    runs = [base, base.with_run(f"{base.run}_b")]
    url, other = (with_password(base, form, run=run.run) for run in runs)
    missing = with_password(base, form, run="no_such_run_here")
    closed = with_password(base, form, port=1)
    outputs = Outputs(capsys, caplog)
    file, backup = str(tmp_path / "copy.db"), str(tmp_path / "backup.db")
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "genesis", "-v", "demo", "--url", url, "--programs", "4",
             "--seconds", "30", "--workers", "1", "--eval-workers", "1"],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
        assert demo.returncode == 0, demo.stderr
        outputs.seen += [demo.stdout, demo.stderr]
        assert "evolving into" in demo.stderr
        succeeding = [("db", "upgrade", url), ("db", "stats", url), ("db", "stats", url, "--json"),
                      ("db", "runs", url), ("db", "copy", url, file), ("db", "verify", url, file),
                      ("db", "backup", url, backup), ("db", "restore", backup, other),
                      ("db", "drop-run", other, "--yes")]
        for args in succeeding:
            assert outputs.run(*args) == 0, args
        failing = [("db", "stats", missing), ("db", "stats", closed), ("db", "copy", url, url),
                   ("db", "copy", file, url), ("db", "verify", url, missing),
                   ("db", "backup", missing, str(tmp_path / "x.db")),
                   ("db", "drop-run", missing, "--yes"), ("db", "upgrade", closed),
                   ("shinka", "--url", url, "--", "no-such-command-here")]
        for args in failing:
            assert outputs.run(*args) != 0, args
        monkeypatch.setenv("DATABASE_URL", url)
        assert outputs.run("db", "stats") == 0
    finally:
        for run in runs:
            drop_pg_run(run)
    assert sum("***" in text for text in outputs.seen) >= len(succeeding)  # shown, masked
    for text in outputs.seen:
        assert_no_secret(text)
