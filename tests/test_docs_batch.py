"""Run the examples of docs/batch.md: every ```console command (through the CLI, in this
process) and every ```python block, in order, in one empty folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from chromarate.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "batch.md"
_BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks():
    return [(lang, body) for lang, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))
            if lang in ("console", "python")]


def _run_console(body: str) -> None:
    for line in body.splitlines():
        if not line.startswith("$ "):
            continue  # output shown in the docs
        argv = shlex.split(line[2:], comments=True)
        assert argv[0] == "chromarate", line
        try:
            main(argv[1:])
        except SystemExit as exc:
            assert exc.code in (0, None), f"{line!r} exited with {exc.code}"


def test_doc_has_examples_of_every_part():
    text = DOC.read_text(encoding="utf-8")
    langs = [lang for lang, _ in _BLOCK.findall(text)]
    assert langs.count("console") >= 5 and langs.count("python") >= 3
    for needle in ("--workers", "--scheduler", "SLURMCluster", "sbatch", "iter_nuclei",
                   "nucleus_table", "--overwrite", "--dry-run", "chromarate report"):
        assert needle in text


@pytest.mark.slow  # about 50 s of fits on 2 busy cores: in the CI's slow step
def test_doc_examples_run(tmp_path, monkeypatch, torch_one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, (lang, body) in enumerate(_blocks()):
        if lang == "console":
            _run_console(body)
        else:
            exec(compile(body, f"{DOC.name}[python block {i}]", "exec"), namespace)
    import pandas as pd

    # both nuclei fitted; the docs' tiny nuclei may be flagged low_confidence by the gate
    status = pd.read_csv(tmp_path / "results" / "summary.csv")["status"]
    assert len(status) == 2 and status.isin(["ok", "low_confidence"]).all()
    assert (tmp_path / "results" / "report" / "index.html").is_file()
    assert (tmp_path / "my-table.csv").is_file() and (tmp_path / "my-pipeline.yaml").is_file()
