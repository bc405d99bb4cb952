"""tests/fast_tier.py, run on a suite of three tests: a plain `pytest` spreads the fast tests over
workers, runs the timed ones in a process of its own at normal priority, and fails when they do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
pytest_plugins = ("fast_tier",)

def pytest_collection_modifyitems(config, items):
    for item in items:
        if "timed" in item.name:
            item.add_marker(pytest.mark.timed)
"""

TESTS_PY = """
import json, os
from pathlib import Path

def _where(name):
    Path(os.environ["WHERE_DIR"], name).write_text(json.dumps({
        "worker": os.environ.get("PYTEST_XDIST_WORKER"), "pid": os.getpid(), "nice": os.nice(0)}))

def test_fast_one():
    _where("fast_one")

def test_fast_two():
    _where("fast_two")

def test_timed_one():
    _where("timed_one")
    assert os.environ.get("FAIL_TIMED") != "1", "the timed test failed"
"""

SETUP_CFG = """
[tool:pytest]
testpaths = tests
addopts = -m "not real"
markers =
    real: real
    timed: timed
"""


def _suite(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "tests" / "test_three.py").write_text(textwrap.dedent(TESTS_PY))
    (tmp_path / "setup.cfg").write_text(SETUP_CFG)
    (tmp_path / "where").mkdir()
    return tmp_path


def _pytest(suite: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMOPS_TIMED", "PYTEST_", "LLMOPS_TEST_SERIAL"))}
    env.update(WHERE_DIR=str(suite / "where"), **extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=300)


def _where(suite: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (suite / "where").iterdir()}


def test_plain_pytest_runs_fast_tests_on_workers_and_timed_ones_beside_whose_failure_fails_it(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    proc = _pytest(suite, FAIL_TIMED="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    where = _where(suite)
    assert set(where) == {"fast_one", "fast_two", "timed_one"}
    base_nice = os.nice(0)
    for name in ("fast_one", "fast_two"):
        assert where[name]["worker"] is not None and where[name]["nice"] == min(base_nice + 10, 19), where
    assert where["timed_one"]["worker"] is None and where["timed_one"]["nice"] == base_nice, where
    assert "2 passed" in proc.stdout  # the workers' part
    assert "tests that judge time (run beside the above" in proc.stdout
    assert "the timed test failed" in proc.stdout and "the tests that judge time exited 1" in proc.stdout


def test_a_named_file_runs_in_one_process(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    proc = _pytest(suite, "tests/test_three.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = _where(suite)
    assert len(where) == 3 and len({w["pid"] for w in where.values()}) == 1, where
    assert "tests that judge time" not in proc.stdout


def test_sigterm_ends_a_test_process_with_its_teardowns_run(tmp_path: Path) -> None:
    """tests/session_signals.py: a SIGTERM (kill, timeout, a cancelled CI job) runs every
    fixture's teardown, as Ctrl-C does, instead of leaving its processes behind."""
    import signal
    import time

    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        pytest_plugins = ("session_signals",)
    """))
    (tmp_path / "test_slow.py").write_text(textwrap.dedent("""
        import time
        from pathlib import Path
        import pytest

        @pytest.fixture(scope="session")
        def server():
            Path("up").write_text("")
            yield
            Path("torn-down").write_text("")

        def test_waits(server):
            time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_slow.py"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # as from a shell that ignores SIGINT: SIGTERM is what comes
    deadline = time.monotonic() + 60
    while not (tmp_path / "up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert (tmp_path / "torn-down").exists(), out
    assert proc.returncode != 0 and "KeyboardInterrupt" in out, out
