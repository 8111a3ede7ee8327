"""Run Debian's headless Chromium on a local file: dump the DOM after scripts ran, take screenshots, print.

Network is shut off as far as Chromium allows: no background networking, no component updates,
no sync, no QUIC, and every host name resolves to nothing (``--host-resolver-rules``), so a page
that tried to load anything from outside would fail visibly instead of reaching out.  Each run gets
a fresh profile directory and its own process group, which is killed and reaped afterwards (also on
timeout), so no renderer or zygote outlives the call.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
         "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
         "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication"]
ENV_VAR = "WIRECHECK_CHROMIUM"


def find_chromium() -> str | None:
    env = os.environ.get(ENV_VAR)
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumError(RuntimeError):
    pass


class Chromium:
    def __init__(self, binary: str, workdir: Path, timeout: float = 90.0):
        self.binary = binary
        self.workdir = Path(workdir)
        self.timeout = timeout

    def _run(self, url: str, extra: list[str]) -> subprocess.CompletedProcess[str]:
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=self.workdir)
        argv = [self.binary, *FLAGS, f"--user-data-dir={profile}", *extra, url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, "HOME": profile})
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc)
            proc.communicate()
            raise ChromiumError(f"chromium did not finish within {self.timeout:.0f} s: {url}") from None
        finally:
            self._kill_group(proc)
            proc.wait()
            shutil.rmtree(profile, ignore_errors=True)
        if proc.returncode != 0:
            raise ChromiumError(f"chromium exited {proc.returncode}: {err.strip()[-500:]}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[str]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def dump_dom(self, url: str, *, budget_ms: int = 3000) -> str:
        """The serialised DOM after the page's scripts ran."""
        return self._run(url, [f"--virtual-time-budget={budget_ms}", "--dump-dom"]).stdout

    def screenshot(self, url: str, path: Path, *, width: int = 1400, height: int = 1800,
                   budget_ms: int = 3000) -> Path:
        path = Path(path)
        self._run(url, [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}",
                        f"--screenshot={path}"])
        if not path.is_file() or path.stat().st_size == 0:
            raise ChromiumError(f"no screenshot written to {path}")
        return path

    def print_pdf(self, url: str, path: Path, *, budget_ms: int = 3000) -> Path:
        path = Path(path)
        self._run(url, [f"--virtual-time-budget={budget_ms}", "--no-pdf-header-footer", f"--print-to-pdf={path}"])
        if not path.is_file() or path.stat().st_size == 0:
            raise ChromiumError(f"no PDF written to {path}")
        return path
