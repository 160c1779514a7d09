#!/usr/bin/env python3
"""Bootstrap and developer tasks. Needs only Python >= 3.11; creates ./.venv on first use.

    python3 tasks.py demo    # set up, start the reference stack, run the pipeline, print report
    python3 tasks.py test    # set up, then ruff + mypy --strict + the whole pytest suite
    python3 tasks.py bench   # set up, then the benchmarks in bench/ (not tests)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def sh(*args: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], cwd=ROOT, check=check).returncode


def setup(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs before anything checks
        sys.exit(f"dualbus needs Python >= 3.11 (this is {sys.version.split()[0]})")
    if not PY.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == digest):
        sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade",
           "pip")
        target = f".[{extras}]" if extras else "."
        sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", target)
        stamp.write_text(digest)
    # The package is installed editable, so its bytecode is cached only by imports, and not at
    # all where PYTHONDONTWRITEBYTECODE is set: every dualbus process (CLI, probe process,
    # engine hosts) would compile its modules again (all 81 take 0.16 s here). compileall
    # writes the cache whatever that variable says and skips what is up to date.
    subprocess.run([str(PY), "-m", "compileall", "-q", "dualbus_pipeline"], cwd=ROOT,
                   check=False, stdout=subprocess.DEVNULL)


def ensure_chromium() -> None:
    """The HTML report test renders in headless Chromium; install Debian's when we can."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        print("note: chromium not found; the HTML render test will fail. "
              "Install it with: apt-get install chromium", flush=True)


def demo(argv: list[str]) -> int:
    setup("")
    return sh(BIN / "dualbus", "demo", *argv, check=False)


def test(argv: list[str]) -> int:
    setup("test")
    ensure_chromium()
    rc = sh(BIN / "ruff", "check", "dualbus_pipeline", "tests", "bench", "tasks.py", check=False)
    rc |= sh(BIN / "mypy", "--strict", "dualbus_pipeline", check=False)
    rc_tests = sh(PY, "-m", "pytest", "-q", *argv, check=False)
    return rc or rc_tests


def bench(argv: list[str]) -> int:
    setup("test")
    return sh(PY, "-m", "bench", *argv, check=False)


def main() -> int:
    tasks = {"demo": demo, "test": test, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        print(__doc__)
        return 2
    return tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
