"""Node ids: kept across restarts, new for a copied directory, distinct for a second running node."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from lanai.mesh import identity

SCRIPT = "import sys; from pathlib import Path; from lanai.mesh.identity import node_id; print(node_id(Path(sys.argv[1])))"


def id_in_new_process(home: Path) -> str:
    """Each call is a fresh process, as a restarted node is (its lock goes with it)."""
    return subprocess.run([sys.executable, "-c", SCRIPT, str(home)], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_id_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    first = id_in_new_process(tmp_path / "home")
    assert first and first == id_in_new_process(tmp_path / "home")


def test_a_copied_directory_gets_a_new_id(tmp_path: Path) -> None:
    original = id_in_new_process(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copied = id_in_new_process(tmp_path / "b")
    assert copied != original
    assert id_in_new_process(tmp_path / "a") == original  # the original keeps its id
    assert id_in_new_process(tmp_path / "b") == copied  # and the copy keeps its new one


def test_a_second_node_on_the_same_directory_gets_its_own_id(tmp_path: Path) -> None:
    held = identity.node_id(tmp_path)  # this process holds the lock, like a running node
    other = id_in_new_process(tmp_path)
    assert other != held and other.startswith(held)


def test_the_fingerprint_changes_with_the_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    assert identity.fingerprint(tmp_path / "x") != identity.fingerprint(tmp_path / "y")
