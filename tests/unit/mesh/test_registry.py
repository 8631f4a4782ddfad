"""The service registry, the catalog read from it, the flags read from service configs, and
the promise that `lanai node` with no flags builds the node `NodeConfig()` describes."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lanai.mesh import catalog, registry
from lanai.mesh.cli import build_parser
from lanai.mesh.cli.serve import config_from_args
from lanai.mesh.node import NodeConfig
from lanai.mesh.placement import DEFAULT_POLICY, POLICIES
from lanai.services.core import options
from lanai.services.core.errors import InvalidInput
from lanai.services.core.hosted import HostedService

ROOT = Path(__file__).resolve().parents[3]


def test_every_entry_names_itself_and_builds_a_hosted_service_type() -> None:
    for name in registry.names():
        entry = registry.entry(name)
        assert entry.name == name
        assert dataclasses.is_dataclass(entry.config)
        assert entry.api().DESCRIPTOR.package == f"lanai.{name}.v1"
        assert callable(entry.build)


def test_an_unknown_service_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown service 'sight'.*speech, vision, language"):
        registry.entry("sight")


def test_entries_import_no_engine() -> None:
    """Listing the services (what `lanai --help` does) loads no inference runtime."""
    code = ("import sys; from lanai.mesh import registry, catalog; registry.entries(); catalog.rpcs(); "
            "heavy = [m for m in ('faster_whisper', 'onnxruntime', 'xllamacpp', 'mlx', 'ctranslate2') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_importing_lanai_writes_no_environment() -> None:
    code = ("import os; before = dict(os.environ); import lanai.services, lanai.mesh.node, lanai.mesh.cli; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env=env)
    assert out.stdout.strip() == "[]"


def test_the_catalog_holds_every_method_of_every_registered_api() -> None:
    rpcs = catalog.rpcs()
    for entry in registry.entries():
        for service in entry.api().DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpc = rpcs[f"/{service.full_name}/{method.name}"]
                assert rpc.service == entry.name
                assert (rpc.client_streaming, rpc.server_streaming) == (method.client_streaming,
                                                                        method.server_streaming)
                assert rpc.request_type.DESCRIPTOR.full_name == method.input_type.full_name
    assert not any(path.startswith("/lanai.mesh.") for path in rpcs)
    assert catalog.grpc_services() == tuple(sorted({p.split("/")[1] for p in rpcs}))


def test_the_catalog_shapes_of_known_methods() -> None:
    rpcs = catalog.rpcs()
    stream = rpcs["/lanai.speech.v1.Speech/StreamTranscribe"]
    assert stream.client_streaming and stream.server_streaming
    generate = rpcs["/lanai.language.v1.Language/GenerateStream"]
    assert not generate.client_streaming and generate.server_streaming
    classify = rpcs["/lanai.vision.v1.Vision/Classify"]
    assert not classify.client_streaming and not classify.server_streaming


def test_requested_model_is_found_in_nested_messages_and_bad_bytes_are_invalid() -> None:
    from lanai.api.speech.v1 import speech_pb2

    rpc = catalog.rpcs()["/lanai.speech.v1.Speech/Transcribe"]
    request = speech_pb2.TranscribeRequest(options=speech_pb2.TranscriptionOptions(model="tiny.en"))
    assert catalog.requested_model(rpc, request.SerializeToString()) == "tiny.en"
    assert catalog.requested_model(rpc, b"") == ""
    with pytest.raises(InvalidInput, match="not a valid lanai.speech.v1.TranscribeRequest"):
        catalog.requested_model(rpc, b"\xff\xff\xff")


def test_a_node_with_no_flags_is_node_config_with_no_arguments() -> None:
    flags = config_from_args(build_parser().parse_args(["node"]))
    plain = NodeConfig()
    for field in dataclasses.fields(NodeConfig):
        if field.name != "configs":
            assert getattr(flags, field.name) == getattr(plain, field.name), field.name
    assert flags.services == registry.names()
    for name in registry.names():
        assert flags.config_of(name) == plain.config_of(name), name
    assert plain.mesh.policy == DEFAULT_POLICY in POLICIES


def test_service_flags_come_from_the_service_config() -> None:
    args = build_parser().parse_args(["node", "--speech-models", "tiny.en, base", "--speech-slots", "3",
                                      "--max-audio-s", "60", "--language-device", "cuda"])
    config = config_from_args(args)
    speech = config.config_of("speech")
    assert speech.models == ("tiny.en", "base") and speech.slots == 3 and speech.max_audio_s == 60.0
    assert config.config_of("language").device == "gpu"  # "cuda" means the same
    for entry in registry.entries():
        flagged = {f.name for f in dataclasses.fields(entry.config) if options.FLAG in f.metadata}
        assert flagged, entry.name
        assert set(vars(args)) >= {f"{entry.name}.{name}" for name in flagged}


def test_options_parse_each_kind_of_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class Demo:
        names: tuple[str, ...] = options.option(("a",), flag="--demo-names", help="names")
        count: int = options.option(factory=lambda: 7, flag="--demo-count", help="how many")
        ratio: float = options.option(0.5, flag="--demo-ratio", help="a ratio")
        mode: str = options.option("x", flag="--demo-mode", choices=("x", "y"), help="mode")
        on: bool = options.option(False, flag="--demo-on", help="switch")
        hidden: int = 3

    parser = argparse.ArgumentParser()
    options.add_flags(parser, Demo, "demo")
    assert options.from_args(Demo, parser.parse_args([]), "demo") == Demo()
    got = options.from_args(Demo, parser.parse_args(["--demo-names", "p,,q", "--demo-count", "2", "--demo-ratio",
                                                     "1.5", "--demo-mode", "y", "--demo-on"]), "demo")
    assert got == Demo(names=("p", "q"), count=2, ratio=1.5, mode="y", on=True)
    assert "(default 7)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--demo-mode", "z"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--hidden", "1"])


def test_the_services_share_one_hosted_base() -> None:
    from lanai.services.language.servicer import LanguageService
    from lanai.services.speech.servicer import SpeechService
    from lanai.services.vision.servicer import VisionService

    for cls in (SpeechService, VisionService, LanguageService):
        assert issubclass(cls, HostedService)
        assert cls.name in registry.names() and cls.grpc_service.startswith(f"lanai.{cls.name}.v1.")


def test_services_import_nothing_from_the_mesh() -> None:
    """The dependency runs one way: lanai.mesh uses lanai.services, never the reverse."""
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "services").rglob("*.py")
                 if "lanai.mesh" in "\n".join(line for line in path.read_text().splitlines()
                                              if line.lstrip().startswith(("import ", "from ")))]
    assert offenders == []


def test_every_package_is_listed_for_installation() -> None:
    """pyproject lists packages by hand (they live under lanai.* from three folders): a folder
    missing from the list is missing from a wheel (the Docker image)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"lanai.api": ROOT / "protos" / "python", "lanai.mesh": ROOT / "mesh", "lanai.services": ROOT / "services"}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("*.py"):
            if init.parent == folder or (init.parent / "__init__.py").exists() or init.parent.name == "v1":
                found.add(".".join([name, *init.parent.relative_to(folder).parts]))
    assert found - listed == set()
