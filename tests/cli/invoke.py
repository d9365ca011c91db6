"""How the CLI tests call livecam: in this process (click's runner), or as a user does, in a new one."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner, Result

from livecam.cli import main


def livecam_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livecam", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
