"""Every `lanai ...` line in the README's and docs/'s shell blocks is a command lanai accepts
(node, router and up lines also pass lanai's own config checks): docs that are true."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lanai.mesh.cli import build_parser
from lanai.mesh.cli.serve import config_from_args
from lanai.mesh.presence import MeshConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(doc: Path) -> list[list[str]]:
    found = []
    for block in re.findall(r"^```(?:sh|bash)\n(.*?)^```", doc.read_text(), flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            match = re.match(r"^(?:export \w+=\$\()?(?:\.venv/bin/)?lanai (.*)$", line)
            if match:
                found.append(shlex.split(re.split(r" > | \| | && |\)$", match[1])[0]))
    return found


def test_the_docs_hold_commands_to_check() -> None:
    ray = commands(ROOT / "docs" / "ray.md")
    assert ["ray", "--address", "ray://10.0.0.10:10001", "ls"] in ray and len(ray) >= 5
    assert sum(len(commands(doc)) for doc in DOCS) > 40


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_documented_command_parses(doc: Path) -> None:
    for argv in commands(doc):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{doc.name} runs `lanai {' '.join(argv)}`, which lanai rejects")
        if args.command in ("node", "router", "up"):
            MeshConfig.validate(config_from_args(args).mesh)
