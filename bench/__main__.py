"""`python -m bench` (or `python3 tasks.py bench`): run every benchmark."""

from __future__ import annotations

import sys

from bench.probe_fidelity import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
