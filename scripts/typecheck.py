"""mypy --strict over lanai.mesh and lanai.services, laid out under their import names.

mypy cannot follow setuptools' package-dir mapping (mesh/ is imported as lanai.mesh),
so this links the source folders into a temporary `lanai/` tree and checks that.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {"mesh": "mesh", "services": "services", "api": "protos/python"}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "lanai"
        package.mkdir()
        for name, source in LAYOUT.items():
            (package / name).symlink_to(ROOT / source, target_is_directory=True)
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                   "--explicit-package-bases", "-p", "lanai.mesh", "-p", "lanai.services", *sys.argv[1:]]
        return subprocess.run(command, cwd=tmp, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
