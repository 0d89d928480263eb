"""The README's test command installs the napari extra and runs under xvfb, as CI does."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_test_command_is_the_ci_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"^pip install torch==\S+ && pip install -e \"\.\[[^\]]*\]\" && .*$",
                          readme, flags=re.M)
    assert len(commands) == 1, commands
    (command,) = commands
    assert "napari" in command and command.endswith("xvfb-run -a python -m pytest")
    assert ci.rstrip().splitlines()[-1] == command
    for package in ("xvfb", "libxcb-cursor0", "libxkbcommon-x11-0", "libegl1"):
        assert package in ci
