"""`python -m beauty_api --help` and `filters` start fast: they never import numpy, requests or Pillow.

Run in a fresh interpreter (the test process itself has them loaded); the timing is a benchmark
(benchmarks/bench_startup.py), not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "requests", "urllib3", "PIL", "torch")

PROBE = """
import json, runpy, sys
watched = set(json.loads(sys.argv[2]))
sys.argv = ["beauty_api", *json.loads(sys.argv[1])]
try:
    runpy.run_module("beauty_api", run_name="__main__")
except SystemExit as done:
    code = done.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & watched)
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["filters"], ["retouch", "--help"], []])
def test_help_and_filters_do_not_import_the_heavy_modules(args):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [text for text in done.stderr.splitlines() if text.startswith("HEAVY=")]
    assert line, done.stderr
    assert json.loads(line[-1][len("HEAVY=") :]) == []
    if args == ["filters"]:
        assert "35  Misty Rain" in done.stdout  # it really ran


def test_the_probe_sees_a_heavy_import_when_there_is_one():
    done = subprocess.run(
        [sys.executable, "-c", "import numpy\n" + PROBE, json.dumps(["filters"]), json.dumps(HEAVY)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 'HEAVY=["numpy"]' in done.stderr
