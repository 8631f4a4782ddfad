"""Generate the Python stubs of protos/ into protos/python; `--check` fails when they are stale.

protoc names Python modules after the .proto paths (`lanai.speech.v1`), but
`lanai.mesh` is the hand-written mesh package. The stubs are therefore published
as `lanai.api.<domain>.v1` (package dir protos/python): this script rewrites only
the import lines and the module name given to the descriptor builder. Wire names
(`lanai.speech.v1.Speech`) are untouched.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.metadata
import re
import sys
import tempfile
from pathlib import Path

# Regenerating with another protoc or plugin changes the output, so the generators are pinned.
PINNED = {"grpcio-tools": "1.85.1", "mypy-protobuf": "5.1.0"}
ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = PROTOS / "python"
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi", "__init__.py", "py.typed")
IMPORT = re.compile(r"^(from|import) lanai\.", re.MULTILINE)
MODULE_NAME = re.compile(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')lanai\.")


def check_pins() -> None:
    for dist, want in PINNED.items():
        have = importlib.metadata.version(dist)
        if have != want:
            sys.exit(f"gen_protos: {dist} {have} is installed but the stubs are made with {want}; "
                     f"run: pip install '{dist}=={want}'")


def generate(out: Path) -> None:
    """Write the stubs for every .proto under protos/lanai into `out`."""
    from grpc_tools import protoc  # imported late: only the generator needs grpcio-tools

    include = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's plugin is installed beside this interpreter (venvs are often not on PATH).
    plugin = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "lanai").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp)
        args = ["protoc", f"--plugin=protoc-gen-mypy_grpc={plugin}", f"-I{PROTOS}", f"-I{include}",
                f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}",
                f"--mypy_grpc_out=quiet:{raw}", *sources]
        if protoc.main(args) != 0:
            sys.exit("gen_protos: protoc failed (see above)")
        for path in sorted((raw / "lanai").rglob("*.py*")):
            text = IMPORT.sub(r"\1 lanai.api.", path.read_text())
            target = out / path.relative_to(raw / "lanai")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(MODULE_NAME.sub(r"\1lanai.api.", text))
    for directory in {p.parent for p in out.rglob("*_pb2.py")}:
        while directory != out.parent:
            (directory / "__init__.py").touch()
            directory = directory.parent
    (out / "__init__.py").write_text('"""Generated gRPC stubs of the lanai protos (see protos/lanai)."""\n')
    (out / "py.typed").touch()


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for pattern in GENERATED for p in root.rglob(pattern)}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in stubs differ")
    check = parser.parse_args().check
    check_pins()
    if not check:
        generate(OUT)
        print(f"gen_protos: wrote {len(generated_files(OUT))} files under {OUT.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want, have = generated_files(fresh), generated_files(OUT)
        stale = sorted(str(p) for p in want | have if p not in want or p not in have
                       or not filecmp.cmp(fresh / p, OUT / p, shallow=False))
    if stale:
        print("gen_protos: the checked-in stubs differ from the protos; "
              "run `python scripts/gen_protos.py` and commit:\n" + "\n".join(f"  {p}" for p in stale))
        return 1
    print("gen_protos: stubs are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
