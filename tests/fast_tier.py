"""How a plain `pytest` runs the fast tier in under two minutes on 2 cores.

`pytest` with no arguments (the whole fast tier: setup.cfg selects `not real`) runs on every core
(pytest-xdist, `-n auto`: its tests share no ports or files). Its tests that judge time (marker
`timed`: the emulator streams at known times and they check what the client measured) would be
delayed by a loaded CPU, emulator and client alike, so they are not given to the workers: one
pytest process of their own runs them beside the workers, one at a time and at normal priority,
while the workers run at nice 10. Their report is printed at the end and their failures fail the
run.

Anything else keeps pytest's plain behaviour: a file or test named on the command line, a `-m`
other than the default, `-n` given explicitly (then the timed tests still run beside the workers),
`-p no:xdist`, or LLMOPS_TEST_SERIAL=1 (one test at a time, timed ones included).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Set in the environment of the process that runs the timed tests (so it does not start another)
# and of the workers (so they leave the timed tests to it).
_CHILD = "LLMOPS_TIMED_CHILD"
_BESIDE = "LLMOPS_TIMED_BESIDE"
_DEFAULT_MARKEXPR = "not real"
_CHILD_WAIT_S = 900


def _whole_suite(config: pytest.Config) -> bool:
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        return True
    tests_dir = Path(__file__).resolve().parent
    return all(Path(arg).resolve() == tests_dir for arg in config.args)


def _xdist_usable(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("xdist") and hasattr(config.option, "numprocesses")


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    # A wrapper, so that this runs before xdist's own pytest_cmdline_main turns "auto" into a count.
    if not (os.environ.get(_CHILD) or hasattr(config, "workerinput") or not _xdist_usable(config)):
        if (config.option.numprocesses is None and config.option.markexpr == _DEFAULT_MARKEXPR
                and not os.environ.get("LLMOPS_TEST_SERIAL") and _whole_suite(config)
                and not config.option.collectonly):
            config.option.numprocesses = "auto"
    return (yield)


class TimedBeside:
    """The controller's side: starts the process that runs the timed tests, waits for it at the
    end, prints its report and carries its verdict into the run's exit status."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc: subprocess.Popen | None = None
        self.rc: int | None = None

    def start(self) -> None:
        option = self.config.option
        markexpr = f"({option.markexpr}) and timed" if option.markexpr else "timed"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-ra",
               "-m", markexpr, *self.config.args]
        if option.keyword:
            cmd += ["-k", option.keyword]
        if option.maxfail:
            cmd += ["--maxfail", str(option.maxfail)]
        env = {**os.environ, _CHILD: "1"}
        env.pop(_BESIDE, None)
        from session_signals import die_with_parent  # lazily: pytest registers that module as a plugin

        self.proc = subprocess.Popen(cmd, cwd=self.config.invocation_params.dir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)  # never runs on alone

    def wait(self) -> int:
        if self.rc is None and self.proc is not None:
            try:
                self.rc = self.proc.wait(timeout=_CHILD_WAIT_S)
            except subprocess.TimeoutExpired:
                self.stop()
                self.rc = pytest.ExitCode.INTERNAL_ERROR
        return self.rc if self.rc is not None else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.shouldstop or session.shouldfail:
            self.stop()
        rc = self.wait()
        # 5: none of the selected tests judges time.
        if rc not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        self.log.seek(0)
        terminalreporter.section("tests that judge time (run beside the above, one at a time)")
        terminalreporter.write(self.log.read())
        if self.rc not in (None, 0, 5):
            terminalreporter.write_line(f"the tests that judge time exited {self.rc}", red=True, bold=True)

    def pytest_unconfigure(self) -> None:
        # Ctrl-C or an internal error: the process must not outlive the run.
        self.stop()
        self.log.close()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        if os.environ.get(_BESIDE):
            os.nice(10)
        return
    if os.environ.get(_CHILD) or not _xdist_usable(config) or not config.option.numprocesses:
        return
    if config.option.collectonly:
        return
    # Workers inherit the controller's environment.
    os.environ[_BESIDE] = "1"
    beside = TimedBeside(config)
    config.pluginmanager.register(beside, "llmops-timed-beside")
    beside.start()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # After tests/conftest.py has marked the timed tests.
    if not (hasattr(config, "workerinput") and os.environ.get(_BESIDE)):
        return
    timed = [item for item in items if item.get_closest_marker("timed")]
    if timed:
        config.hook.pytest_deselected(items=timed)
        items[:] = [item for item in items if not item.get_closest_marker("timed")]
