"""A native crash in any crackq process leaves its Python stacks behind (faulthandler)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness.procs import ROOT

NULL_READ = "import ctypes; ctypes.string_at(0)"  # a segfault, as a native bug would cause
IN_PROCESS = f"import worker.app; {NULL_READ}"
# the child imports nothing of ours: only the environment crackq set can enable it there
IN_CHILD = (
    "import subprocess, sys, worker.app; "
    f"sys.exit(subprocess.run([sys.executable, '-c', {NULL_READ!r}]).returncode)"
)
SEGV = (-signal.SIGSEGV, 128 + signal.SIGSEGV, 256 - signal.SIGSEGV)


def test_a_segfault_names_the_python_stack_in_the_process_and_its_children() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    for code in (IN_PROCESS, IN_CHILD):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode in SEGV, out
        assert "Fatal Python error: Segmentation fault" in out.stderr, out.stderr
        assert 'File "<string>", line 1' in out.stderr, out.stderr
