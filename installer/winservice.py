"""Windows: hosts the agent daemon as a service of the Service Control Manager.

The service's command line is ``python.exe -m deskside.installer.winservice
--config-dir DIR --state-dir DIR`` (see ``deskside.installer.windows``). This module
answers the SCM through pywin32's ``servicemanager`` (start, stop, status), runs the
agent's daemon on a thread of its own with its own event loop, and logs to the
Application event log and to the agent's log file.

Needs pywin32, which the package depends on only on Windows. Never run on this
project's test machines (Linux): mypy checks it only for Windows.
"""

# ruff: noqa: E402 (the imports follow the platform check, so mypy skips them off Windows)
from __future__ import annotations

import sys

assert sys.platform == "win32"

import argparse
import asyncio
import logging
import logging.handlers
from pathlib import Path

import servicemanager
import win32event
import win32service
import win32serviceutil

from deskside.agent.config import load_enrolled, resolve_paths
from deskside.agent.daemon import Daemon, DaemonSettings

from .base import SERVICE_NAME

__all__ = ["AgentService", "main"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Set by main() from the command line before the dispatcher starts the service.
_DIRS: list[Path] = []


class _EventLogHandler(logging.Handler):
    """Warnings and errors to the Application event log, under the service's name.

    Through ``servicemanager`` rather than ``NTEventLogHandler``, which registers an
    event source in the registry on creation: the service's account may not.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                servicemanager.LogErrorMsg(text)
            elif record.levelno >= logging.WARNING:
                servicemanager.LogWarningMsg(text)
            else:
                servicemanager.LogInfoMsg(text)
        except Exception:
            self.handleError(record)


class AgentService(win32serviceutil.ServiceFramework):  # type: ignore[misc,unused-ignore]
    """The SCM's view of the agent: start runs the daemon, stop asks it to stop."""

    _svc_name_ = SERVICE_NAME
    _svc_display_name_ = "Deskside Agent"

    def __init__(self, args: list[str]) -> None:
        super().__init__(args)
        # Signalled when the daemon thread has ended.
        self._stopped = win32event.CreateEvent(None, 0, 0, None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._daemon: Daemon | None = None

    def SvcStop(self) -> None:
        """The SCM asks the service to stop."""
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
        if self._loop is not None and self._daemon is not None:
            self._loop.call_soon_threadsafe(self._daemon.stop)

    def SvcDoRun(self) -> None:
        """Run the daemon until it stops."""
        config_dir, state_dir = _DIRS
        paths = resolve_paths(config_dir, state_dir)
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        event_log = _EventLogHandler()
        event_log.setLevel(logging.WARNING)
        root.addHandler(event_log)
        file_log = logging.handlers.RotatingFileHandler(
            state_dir / "agent.log", maxBytes=1 << 20, backupCount=3, encoding="utf-8"
        )
        file_log.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(file_log)
        servicemanager.LogInfoMsg(f"{SERVICE_NAME} starting")
        loaded = load_enrolled(paths)
        if loaded is None:
            servicemanager.LogErrorMsg(f"{SERVICE_NAME}: not enrolled ({paths.config_file})")
            return
        config, identity = loaded
        self._loop = asyncio.new_event_loop()
        self._daemon = Daemon(paths, config, identity, DaemonSettings.from_environ())
        self.ReportServiceStatus(win32service.SERVICE_RUNNING)
        try:
            self._loop.run_until_complete(self._daemon.run())
        finally:
            self._loop.close()
            win32event.SetEvent(self._stopped)
            servicemanager.LogInfoMsg(f"{SERVICE_NAME} stopped")


def main(argv: list[str] | None = None) -> None:
    """Parse the directories and hand the process to the SCM's dispatcher."""
    parser = argparse.ArgumentParser(prog="deskside.installer.winservice")
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    _DIRS[:] = [args.config_dir, args.state_dir]
    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(AgentService)
    servicemanager.StartServiceCtrlDispatcher()  # type: ignore[no-untyped-call,unused-ignore]


if __name__ == "__main__":
    main()
