"""The Helm chart (helm/lanai): Helm's own linter, offline renders with several value sets, every
rendered lanai command line checked against lanai's argparse (catches flag drift), and the mesh
trust wiring run for real: the init container's script copies a CA Secret that lanai then uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

helm_python = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install 'lanai[dev]'): cannot lint or render the chart")
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from lanai.mesh.cli import build_parser  # noqa: E402
from lanai.mesh.cli.serve import config_from_args  # noqa: E402
from lanai.mesh import registry  # noqa: E402
from lanai.mesh.security import authority, pki  # noqa: E402
from lanai.mesh.security import policy as policies  # noqa: E402
from lanai.mesh.security.config import SecurityConfig  # noqa: E402
from lanai.mesh.security.enrol import open_trust  # noqa: E402
from lanai.mesh.security.store import MeshDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "lanai"
GRPC, MESH, METRICS, HTTP, WYOMING = 50051, 50052, 9464, 8080, 10300
RELEASE = "demo"
CA_SECRET = "lanai-mesh-ca"
SECURE = {"mesh": {"caSecret": CA_SECRET}}
"""The smallest values that render: the CA Secret has no default."""

# (values, namespace) per scenario; every rendering test runs on each.
SCENARIOS: dict[str, tuple[dict[str, Any], str]] = {
    "defaults": (SECURE, "default"),
    "gpu-and-cpu-groups": ({
        "mesh": {"caSecret": CA_SECRET},
        "allow": "10.0.0.0/8,100.64.0.0/10",
        "router": {"policy": "round-robin", "extraArgs": ["--max-message-mb", "128"]},
        "nodeGroups": {
            "speech-cpu": {
                "replicas": 3,
                "nodeSelector": {"kubernetes.io/arch": "amd64"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "speech",
                                 "effect": "NoSchedule"}],
            },
            "speech-gpu": {
                "enabled": True,
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "runtimeClassName": "nvidia",
                "image": {"repository": "registry.example/lanai-cuda", "tag": "0.1.0-cu12"},
                "grace": 300,
            },
            # A group given only a few keys: the chart's defaults fill the rest.
            "speech-small": {"speech": {"models": "tiny.en", "slots": 1}, "extraArgs": ["--max-audio-s", "600"]},
        },
    }, "inference"),
    "observed-lb": ({
        "mesh": {"caSecret": "mesh-ca", "requireKeys": False, "policyConfigMap": "mesh-policy"},
        "fullnameOverride": "mesh",
        "clusterDomain": "k8s.internal",
        "grace": 120,
        "router": {"replicas": 2, "service": {"type": "LoadBalancer", "nodePorts": {"grpc": 30051, "http": 30080},
                                               "loadBalancerSourceRanges": ["192.168.0.0/16"]}},
        "doors": {"wyoming": {"enabled": True, "allow": "192.168.0.0/16"}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
        "grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "lanai"}}},
    }, "monitoring"),
    "insecure-lab": ({"mesh": {"insecure": True}, "doors": {"http": {"enabled": False}}}, "lab"),
    "kuberay": ({"mesh": {"caSecret": CA_SECRET}, "kuberay": {
        "enabled": True, "image": {"repository": "registry.example/lanai-ray", "tag": "0.1.0"},
        "nodes": {"speech": 3, "language": 1}, "memory": "2GiB", "workers": {"resources": '{"lanai": 4}'},
        "extraArgs": ["--speech-models", "tiny.en"]}}, "ray"),
}


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


class Rendered:
    """The objects of one render, with lookups the tests need."""

    def __init__(self, manifests: dict[str, str], values: dict[str, Any], namespace: str) -> None:
        self.values, self.namespace = values, namespace
        self.notes = next((text for path, text in manifests.items() if path.endswith("NOTES.txt")), "")
        self.objects = [doc for path, text in manifests.items() if not path.endswith(".txt")
                        for doc in yaml.safe_load_all(text) if doc]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def deployments(self, component: str) -> list[dict[str, Any]]:
        return [d for d in self.kind("Deployment")
                if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component]

    @property
    def router(self) -> dict[str, Any]:
        (router,) = self.deployments("router")
        return router

    @property
    def headless(self) -> dict[str, Any]:
        (svc,) = [s for s in self.kind("Service") if s["spec"].get("clusterIP") == "None"]
        return svc

    @property
    def router_service(self) -> dict[str, Any]:
        (svc,) = [s for s in self.kind("Service") if s["spec"].get("clusterIP") != "None"]
        return svc

    def group(self, name: str) -> dict[str, Any]:
        (dep,) = [d for d in self.deployments("node")
                  if d["spec"]["template"]["metadata"]["labels"]["lanai/node-group"] == name]
        return dep


def mesh_values(values: dict[str, Any]) -> dict[str, Any]:
    defaults = {"insecure": False, "caSecret": "", "requireKeys": True, "policyConfigMap": ""}
    return {**defaults, **values.get("mesh", {})}


def kuberay(values: dict[str, Any]) -> bool:
    return bool(values.get("kuberay", {}).get("enabled", False))


def secure(values: dict[str, Any]) -> bool:
    return not mesh_values(values)["insecure"]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (c,) = containers
    return c


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def flag(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} appears {args.count(name)} times in {args}"
    return args[args.index(name) + 1]


def contains_run(args: list[str], run: list[str]) -> bool:
    return any(args[i:i + len(run)] == run for i in range(len(args) - len(run) + 1))


@pytest.fixture(scope="module", params=list(SCENARIOS))
def rendered(request: pytest.FixtureRequest, chart: Any) -> Rendered:
    values, namespace = SCENARIOS[request.param]
    return Rendered(chart.render(values, name=RELEASE, namespace=namespace), values, namespace)


# --- lint -------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_lint_has_no_errors_or_warnings(scenario: str) -> None:
    values, namespace = SCENARIOS[scenario]
    report = helm_python.lint(CHART, values, strict=True, namespace=namespace)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems
    # The only note Helm has: Chart.yaml has no icon (lanai has no published logo URL yet).
    assert {m["error"] for m in report["messages"]} <= {"icon is recommended"}


def test_chart_metadata(chart: Any) -> None:
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.metadata["appVersion"] == "0.1.0"
    assert chart.name == "lanai"


# --- objects, names, labels -------------------------------------------------------------------

def test_objects_have_valid_names_and_standard_labels(rendered: Rendered) -> None:
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    for obj in rendered.objects:
        meta = obj["metadata"]
        assert dns_label.match(meta["name"]), meta["name"]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "lanai"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    for dep in rendered.kind("Deployment"):
        assert pod_labels(dep)["app.kubernetes.io/component"] in ("router", "node")


def test_expected_objects(rendered: Rendered) -> None:
    kinds = sorted(o["kind"] for o in rendered.objects)
    groups = {name for name, g in {"speech-cpu": {}, "vision-language-cpu": {},
                                   **rendered.values.get("nodeGroups", {})}.items()
              if g.get("enabled", name != "speech-gpu")}
    assert kinds.count("Deployment") == 1 + len(groups)
    assert {pod_labels(d)["lanai/node-group"] for d in rendered.deployments("node")} == groups
    assert kinds.count("Service") == 2
    assert rendered.router["spec"]["replicas"] == rendered.values.get("router", {}).get("replicas", 1)


def test_deployment_selectors_match_their_pods_only(rendered: Rendered) -> None:
    deployments = rendered.kind("Deployment")
    for dep in deployments:
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(dep)), dep["metadata"]["name"]
        for other in deployments:
            if other is not dep:
                assert not selects(selector, pod_labels(other)), (dep["metadata"]["name"], other["metadata"]["name"])


# --- ports, probes, services ------------------------------------------------------------------

def doors(values: dict[str, Any]) -> set[str]:
    """The doors the router serves under these values (HTTP by default, Wyoming when asked)."""
    asked = values.get("doors", {})
    return ({"http"} if asked.get("http", {}).get("enabled", True) else set()) | \
        ({"wyoming"} if asked.get("wyoming", {}).get("enabled", False) else set())


def test_containers_expose_grpc_mesh_and_metrics(rendered: Rendered) -> None:
    for dep in rendered.kind("Deployment"):
        ports = {p["name"]: p for p in container(dep)["ports"]}
        assert ports["grpc"]["containerPort"] == GRPC
        assert ports["metrics"]["containerPort"] == METRICS
        extra = doors(rendered.values) if dep is rendered.router else set()  # nodes serve no door
        if secure(rendered.values):
            assert ports["mesh"]["containerPort"] == MESH
            assert set(ports) == {"grpc", "mesh", "metrics"} | extra
        else:
            assert set(ports) == {"grpc", "metrics"} | extra, "an --insecure process has no mesh port"
        for name, number in (("http", HTTP), ("wyoming", WYOMING)):
            assert name not in ports or ports[name]["containerPort"] == number
        assert {p["protocol"] for p in ports.values()} == {"TCP"}


def compose_health_script() -> str:
    """compose.yaml's healthcheck script (its anchors resolved by YAML itself)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    test = compose["services"]["router"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return " ".join(test[3].split())


def test_probes_check_grpc_health_on_the_client_port(rendered: Rendered) -> None:
    """Native gRPC probes speak plaintext: on a TLS client port they would never pass. With mesh
    trust each probe runs compose's health check over TLS instead; --insecure keeps native ones."""
    for dep in rendered.kind("Deployment"):
        c = container(dep)
        actions = []
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = {k: v for k, v in c[probe].items() if k in ("grpc", "exec", "tcpSocket", "httpGet")}
            assert len(handler) == 1, (dep["metadata"]["name"], probe, handler)
            actions.append(handler)
        assert actions[0] == actions[1] == actions[2], "the three probes check the same thing"
        if secure(rendered.values):
            command = actions[0]["exec"]["command"]
            assert command[:2] == ["python", "-c"] and command[3:] == [f"localhost:{GRPC}"]
            assert " ".join(command[2].split()) == compose_health_script(), "the probe is compose's health check"
            assert {e["name"] for e in c["env"]} >= {"LANAI_HOME"}, "the check finds the CA through LANAI_HOME"
        else:
            assert actions[0] == {"grpc": {"port": GRPC}}
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 120


def service_ports(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in svc["spec"]["ports"]}


def test_router_service(rendered: Rendered) -> None:
    svc, router = rendered.router_service, rendered.router
    expected_type = rendered.values.get("router", {}).get("service", {}).get("type", "ClusterIP")
    assert svc["spec"]["type"] == expected_type
    ports = service_ports(svc)
    assert (ports["grpc"]["port"], ports["grpc"]["targetPort"]) == (GRPC, "grpc")
    assert (ports["metrics"]["port"], ports["metrics"]["targetPort"]) == (METRICS, "metrics")
    assert set(ports) == {"grpc", "metrics"} | doors(rendered.values)
    if "http" in ports:
        assert (ports["http"]["port"], ports["http"]["targetPort"]) == (HTTP, "http")
        assert ports["http"]["appProtocol"] == ("https" if secure(rendered.values) else "http")
    if "wyoming" in ports:
        assert (ports["wyoming"]["port"], ports["wyoming"]["targetPort"]) == (WYOMING, "wyoming")
    assert selects(svc["spec"]["selector"], pod_labels(router))
    for node in rendered.deployments("node"):
        assert not selects(svc["spec"]["selector"], pod_labels(node))
    if expected_type == "LoadBalancer":
        assert ports["grpc"]["nodePort"] == 30051
        assert svc["spec"]["loadBalancerSourceRanges"] == ["192.168.0.0/16"]
    else:
        assert all("nodePort" not in p for p in ports.values())


def test_headless_service_selects_every_node_group_but_not_the_router(rendered: Rendered) -> None:
    svc = rendered.headless
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is False
    assert svc["metadata"]["namespace"] == rendered.namespace
    ports = service_ports(svc)
    # The port routers reach nodes at: the mesh port, or the client port of an --insecure mesh.
    member = ("mesh", MESH) if secure(rendered.values) else ("grpc", GRPC)
    assert set(ports) == {member[0], "metrics"}
    assert (ports[member[0]]["port"], ports[member[0]]["targetPort"]) == (member[1], member[0])
    assert (ports["metrics"]["port"], ports["metrics"]["targetPort"]) == (METRICS, "metrics")
    nodes = rendered.deployments("node")
    assert nodes
    for node in nodes:
        assert selects(svc["spec"]["selector"], pod_labels(node)), node["metadata"]["name"]
        # Each target port is a named port of the node containers.
        named = {p["name"]: p["containerPort"] for p in container(node)["ports"]}
        assert all(named.get(p["targetPort"]) == p["port"] for p in ports.values()), (named, ports)
    assert not selects(svc["spec"]["selector"], pod_labels(rendered.router))


def test_router_resolves_the_headless_service(rendered: Rendered) -> None:
    args = container(rendered.router)["args"]
    svc = rendered.headless
    domain = rendered.values.get("clusterDomain", "cluster.local")
    fqdn = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.{domain}"
    port = MESH if secure(rendered.values) else GRPC
    ray = kuberay(rendered.values)
    assert contains_run(args, ["--discovery", "dns,ray" if ray else "dns", "--dns", f"{fqdn}:{port}"]), args
    assert ("--ray-address" in args) == ray
    assert "--no-router" not in args
    assert flag(args, "--policy") == rendered.values.get("router", {}).get("policy", "least-loaded")
    if "allow" in rendered.values:
        assert flag(args, "--allow") == rendered.values["allow"]
    else:
        assert "--allow" not in args
    assert fqdn in rendered.notes


def test_nodes_only_host_services(rendered: Rendered) -> None:
    for node in rendered.deployments("node"):
        args = container(node)["args"]
        assert "--no-router" in args
        assert contains_run(args, ["--discovery", "none"])
        assert "--dns" not in args


def test_shutdown_grace(rendered: Rendered) -> None:
    for dep in rendered.kind("Deployment"):
        grace = float(flag(container(dep)["args"], "--grace"))
        assert grace == (300 if pod_labels(dep).get("lanai/node-group") == "speech-gpu"
                         else rendered.values.get("grace", 30))
        period = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace < period <= grace + 30


def test_pods_run_as_non_root(rendered: Rendered) -> None:
    for dep in rendered.kind("Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        sc = container(dep)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        env = {e["name"]: e for e in container(dep)["env"]}
        assert env["LANAI_HOME"]["value"] == "/var/lib/lanai"
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


# --- every command line is one lanai accepts ---------------------------------------------------

def test_every_command_line_parses_with_lanai_argparse(rendered: Rendered) -> None:
    parser = build_parser()
    for dep in rendered.kind("Deployment"):
        c = container(dep)
        assert c["command"] == ["lanai"]
        assert all(isinstance(a, str) for a in c["args"]), c["args"]
        try:
            args = parser.parse_args(c["args"])
        except SystemExit as exc:  # argparse printed why on stderr
            pytest.fail(f"{dep['metadata']['name']}: lanai rejects {c['args']} ({exc})")
        config = config_from_args(args)  # also runs lanai's own config checks
        assert (config.host, config.port, config.metrics_host, config.metrics_port) == (
            "0.0.0.0", GRPC, "0.0.0.0", METRICS)
        assert args.node_id == "$(POD_NAME)"
        component = pod_labels(dep)["app.kubernetes.io/component"]
        assert args.command == component
        mesh = mesh_values(rendered.values)
        security = config.security
        assert security.insecure == mesh["insecure"], "only mesh.insecure turns mesh trust off"
        if secure(rendered.values):
            assert (config.mesh_port, security.client_tls) == (MESH, True)
            # Keys: the router as mesh.requireKeys says; nodes always (clients go through the router).
            assert security.require_keys == (mesh["requireKeys"] or component == "node"), component
            assert "--open" not in c["args"] or component == "router"
        else:
            assert "--open" not in c["args"] and "--mesh-port" not in c["args"]
        served = doors(rendered.values) if component == "router" else set()
        assert config.http_port == (HTTP if "http" in served else None), component
        assert config.wyoming_port == (WYOMING if "wyoming" in served else None), component
        if "wyoming" in served:
            allow = rendered.values["doors"]["wyoming"].get("allow", "")
            assert config.wyoming_allow == tuple(a for a in allow.split(",") if a)
        if component == "router":
            assert config.services == ()
            assert (config.mesh.backends, config.mesh.router) == (
                ("dns", "ray") if kuberay(rendered.values) else ("dns",), True)
            assert config.mesh.dns_name == f"{rendered.headless['metadata']['name']}." \
                f"{rendered.namespace}.svc.{rendered.values.get('clusterDomain', 'cluster.local')}:" \
                f"{MESH if secure(rendered.values) else GRPC}"
        else:
            assert config.services and set(config.services) <= set(registry.names())
            assert (config.mesh.discovery, config.mesh.router) == ("none", False)


def test_the_argparse_check_catches_flag_drift(chart: Any) -> None:
    """The check above bites: a flag lanai does not have makes argparse exit."""
    values = {**SECURE, "router": {"extraArgs": ["--no-such-flag"]}}
    r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
    with pytest.raises(SystemExit):
        build_parser().parse_args(container(r.router)["args"])


# --- KubeRay ----------------------------------------------------------------------------------

def ray_address(rendered: Rendered) -> str:
    domain = rendered.values.get("clusterDomain", "cluster.local")
    return f"ray://{RELEASE}-lanai-ray-head-svc.{rendered.namespace}.svc.{domain}:10001"


def test_kuberay_objects_only_when_enabled(rendered: Rendered) -> None:
    clusters, jobs = rendered.kind("RayCluster"), rendered.kind("Job")
    assert (len(clusters), len(jobs)) == ((1, 1) if kuberay(rendered.values) else (0, 0))


@pytest.fixture(scope="module")
def ray_rendered(chart: Any) -> Rendered:
    values, namespace = SCENARIOS["kuberay"]
    return Rendered(chart.render(values, name=RELEASE, namespace=namespace), values, namespace)


def test_ray_pods_carry_the_mesh_ca_keep_the_dashboard_local_and_send_no_usage_stats(ray_rendered: Rendered) -> None:
    rendered = ray_rendered
    (cluster,) = rendered.kind("RayCluster")
    spec = cluster["spec"]
    assert cluster["apiVersion"] == "ray.io/v1" and spec["rayVersion"] == "2.60.0"
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no lanai node on the head
    (workers,) = spec["workerGroupSpecs"]
    assert workers["rayStartParams"] == {"resources": '{"lanai": 4}'} and workers["replicas"] == 2
    home = "/var/lib/lanai"
    for template in (spec["headGroupSpec"]["template"], workers["template"]):
        pod = template["spec"]
        (c,) = pod["containers"]
        assert c["image"] == "registry.example/lanai-ray:0.1.0"
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["RAY_USAGE_STATS_ENABLED"] == "0" and env["LANAI_HOME"] == home
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts[f"{home}/ray"] == "ray-homes" and "emptyDir" in volumes["ray-homes"]  # actors' identities
        assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory"}
        assert mounts[f"{home}/mesh"] == "mesh" and volumes["mesh-ca"]["secret"]["secretName"] == CA_SECRET
        (init,) = pod["initContainers"]
        assert "/mesh/files/ca.key" in init["command"][-1] and init["image"] == c["image"]
        assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"]


def test_the_ray_up_job_and_its_node_flags_parse_with_lanai_argparse(ray_rendered: Rendered) -> None:
    rendered = ray_rendered
    from lanai.mesh.raycluster.actor import machine_config

    (job,) = rendered.kind("Job")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(c["args"])
    assert (args.command, args.action, args.address) == ("ray", "up", ray_address(rendered))
    assert (args.speech, args.vision, args.language, args.voice) == (3, 0, 1, 0)
    assert (args.num_cpus, args.memory) == (1.0, "2GiB")
    node = machine_config(["--services", "speech", *args.node_flags[1:]])
    assert node.config_of("speech").models == ("tiny.en",) and not node.security.insecure
    assert node.grace_s == 30 and node.port == 0 and not node.mesh.router
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    router = build_parser().parse_args(container(rendered.router)["args"])
    assert router.ray_address == ray_address(rendered)


# --- mesh trust -------------------------------------------------------------------------------

def test_rendering_needs_the_ca_secret_unless_insecure(chart: Any) -> None:
    for values in ({}, {"mesh": {"caSecret": ""}}, {"mesh": {"insecure": False}}):
        with pytest.raises(helm_python.HelmError, match=r"mesh\.caSecret is required.*mesh\.insecure=true"):
            chart.render(values, name=RELEASE, namespace="default")
    values = {"mesh": {"insecure": True}}
    r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
    for dep in r.kind("Deployment"):
        assert "--insecure" in container(dep)["args"]
        assert "initContainers" not in pod_spec(dep)
        assert [v["name"] for v in pod_spec(dep)["volumes"]] == ["tmp"]


def volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(deployment)["volumes"]}


def mounts(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in c.get("volumeMounts", [])}


def test_every_pod_copies_the_ca_secret_in_an_init_container(rendered: Rendered) -> None:
    mesh = mesh_values(rendered.values)
    if not secure(rendered.values):  # an --insecure mesh has no CA
        assert not any("initContainers" in pod_spec(d) for d in rendered.kind("Deployment"))
        return
    for dep in rendered.kind("Deployment"):
        name, c = dep["metadata"]["name"], container(dep)
        (init,) = pod_spec(dep)["initContainers"]
        assert (init["image"], init["imagePullPolicy"]) == (c["image"], c["imagePullPolicy"]), name
        assert init["securityContext"] == c["securityContext"], name
        assert init["command"][:2] == ["sh", "-c"] and len(init["command"]) == 3
        vols = volumes(dep)
        assert vols["mesh"] == {"name": "mesh", "emptyDir": {}}, "the pod's own mesh directory, gone with the pod"
        secret = vols["mesh-ca"]["secret"]
        assert secret["secretName"] == mesh["caSecret"]
        assert {i["key"] for i in secret["items"]} == {"tls.crt", "tls.key"}  # a cert-manager / kubernetes.io/tls Secret
        assert secret["defaultMode"] & 0o007 == 0, "the CA key is not world-readable"
        if mesh["policyConfigMap"]:
            assert vols["mesh-policy"]["configMap"]["name"] == mesh["policyConfigMap"]
            assert "mesh-policy" in mounts(init)
        else:
            assert "mesh-policy" not in vols and "mesh-policy" not in mounts(init)
        # The Secret reaches the init container only; the lanai container gets the copies.
        assert mounts(init)["mesh-ca"]["readOnly"] is True
        assert "mesh-ca" not in mounts(c)
        env = {e["name"]: e.get("value") for e in c["env"]}
        lanai_mesh = mounts(c)["mesh"]
        assert lanai_mesh["mountPath"] == f"{env['LANAI_HOME']}/mesh"
        assert lanai_mesh.get("subPath"), "lanai chmods its mesh directory: it must be one the pod's user owns"
        assert f"{mounts(init)['mesh']['mountPath']}/{lanai_mesh['subPath']}/ca.key" in init["command"][2]


def _cert_manager_ca(folder: Path) -> tuple[bytes, bytes]:
    """A CA as cert-manager makes one for `isCA: true` with an ECDSA P-256 key: a self-signed
    certificate, its key in SEC1 PEM (BEGIN EC PRIVATE KEY)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lanai mesh CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=False,
                                         content_commitment=False, key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def _run_init(init: dict[str, Any], sources: dict[str, Path], pod: Path) -> None:
    """The init container's script, run here: each of its mounts becomes a folder of `pod`."""
    script = init["command"][2]
    for m in sorted(mounts(init).values(), key=lambda m: -len(m["mountPath"])):
        folder = sources.get(m["name"], pod / m["name"])
        folder.mkdir(parents=True, exist_ok=True)
        assert f"{m['mountPath']}/" in script, m
        script = script.replace(f"{m['mountPath']}/", f"{folder}/")
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.skipif(shutil.which("install") is None, reason="coreutils' install is not here")
@pytest.mark.parametrize("made_by", ["cert-manager", "lanai mesh init"])
def test_init_container_gives_lanai_a_mesh_it_uses(chart: Any, tmp_path: Path, made_by: str) -> None:
    """Render, run each pod's init script on a Secret (and policy ConfigMap) here, then start
    lanai's mesh trust on the directory the lanai container mounts: it issues the pod its own
    certificate with the Secret's CA, and takes the policy's API keys."""
    secret, configmap = tmp_path / "secret", tmp_path / "configmap"
    secret.mkdir()
    api_key = ""
    if made_by == "cert-manager":
        ca_pem, ca_key = _cert_manager_ca(tmp_path)
    else:  # `lanai mesh init --home ./lanai-ca`, then `kubectl create secret tls --cert ca.crt --key ca.key`
        mesh = MeshDir(tmp_path / "lanai-ca")
        authority.init(mesh, dt.datetime.now(dt.timezone.utc))
        api_key = authority.new_api_key()
        authority.change_policy(mesh, lambda p: policies.add_key(p, "me", api_key, authority.unix_now()))
        ca_pem, ca_key = mesh.ca_cert.read_bytes(), mesh.ca_key.read_bytes()
        configmap.mkdir()
        shutil.copy(mesh.policy, configmap / "policy.json")
    (secret / "tls.crt").write_bytes(ca_pem)
    (secret / "tls.key").write_bytes(ca_key)
    values = {"mesh": {"caSecret": CA_SECRET, "policyConfigMap": "lanai-mesh-policy" if api_key else ""}}
    r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
    for dep in r.kind("Deployment"):
        pod = tmp_path / dep["metadata"]["name"]
        (init,) = pod_spec(dep)["initContainers"]
        _run_init(init, {"mesh-ca": secret, "mesh-policy": configmap}, pod)
        lanai_mesh = mounts(container(dep))["mesh"]
        copied = pod / "mesh" / lanai_mesh["subPath"]
        assert stat.S_IMODE(copied.stat().st_mode) == 0o700
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in copied.iterdir()} == {
            "ca.crt": 0o600, "ca.key": 0o600, **({"policy.json": 0o600} if api_key else {})}
        # The lanai container: $LANAI_HOME/mesh is that directory.
        home = pod / "lanai-home"
        home.mkdir()
        (home / "mesh").symlink_to(copied)
        node_id = f"{dep['metadata']['name']}-5d8f9c7b4-x2x9q"
        trust = asyncio.run(open_trust(home, node_id, SecurityConfig()))
        ca = pki.load_cert(ca_pem)
        assert trust.mesh_id == pki.fingerprint(ca) and trust.holds_ca
        assert pki.issued_by(pki.load_cert(MeshDir(home).node_cert(node_id).read_bytes()), ca)
        assert trust.cert.name == node_id and "localhost" in trust.cert.dns_names  # what the probes dial
        if api_key:
            assert trust.check_key(api_key).name == "me"


def test_router_pods_are_named_like_their_service(rendered: Rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node certificate names the machine's host name: the router pods' is the Service's name, so
    in-namespace clients calling `<fullname>-router:<port>` can verify it."""
    from lanai.mesh.security import trust

    hostname = pod_spec(rendered.router)["hostname"]
    assert hostname == rendered.router_service["metadata"]["name"]
    monkeypatch.setattr(trust.socket, "gethostname", lambda: hostname)
    assert hostname in trust.machine_names()


# --- node groups ------------------------------------------------------------------------------

def test_default_cpu_group(chart: Any) -> None:
    r = Rendered(chart.render(SECURE, name=RELEASE, namespace="default"), SECURE, "default")
    dep = r.group("speech-cpu")
    c = container(dep)
    assert dep["spec"]["replicas"] == 2
    assert flag(c["args"], "--services") == "speech"
    assert flag(c["args"], "--speech-models") == "base"
    assert (flag(c["args"], "--speech-slots"), flag(c["args"], "--speech-threads")) == ("2", "2")
    assert "--speech-device" not in c["args"]
    assert not any("gpu" in k for k in c["resources"].get("limits", {}))
    assert c["image"] == "lanai:0.1.0"


def test_gpu_and_cpu_groups(chart: Any) -> None:
    values, namespace = SCENARIOS["gpu-and-cpu-groups"]
    r = Rendered(chart.render(values, name=RELEASE, namespace=namespace), values, namespace)

    gpu = r.group("speech-gpu")
    c, pod = container(gpu), gpu["spec"]["template"]["spec"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["memory"] == "8Gi"  # the group's own limits are kept
    assert contains_run(c["args"], ["--speech-device", "cuda"])
    assert flag(c["args"], "--speech-compute-type") == "float16"
    assert c["image"] == "registry.example/lanai-cuda:0.1.0-cu12"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert gpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}

    cpu = r.group("speech-cpu")
    c, pod = container(cpu), cpu["spec"]["template"]["spec"]
    assert cpu["spec"]["replicas"] == 3
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert "--speech-device" not in c["args"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "runtimeClassName" not in pod
    assert "strategy" not in cpu["spec"]

    small = r.group("speech-small")
    c = container(small)
    assert small["spec"]["replicas"] == 1
    assert flag(c["args"], "--services") == "speech"
    assert flag(c["args"], "--speech-models") == "tiny.en"
    assert flag(c["args"], "--speech-slots") == "1"
    assert c["args"][-2:] == ["--max-audio-s", "600"]
    assert "resources" not in c

    assert container(r.router)["args"][-2:] == ["--max-message-mb", "128"]


def test_groups_can_be_disabled_or_removed(chart: Any) -> None:
    for values in ({**SECURE, "nodeGroups": {"speech-cpu": {"enabled": False}, "vision-language-cpu": {"enabled": False},
                                             "only": {"replicas": 0}}},
                   {**SECURE, "nodeGroups": {"speech-cpu": None, "vision-language-cpu": None, "only": {"replicas": 0}}}):
        r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
        assert [pod_labels(d)["lanai/node-group"] for d in r.deployments("node")] == ["only"]
        assert r.group("only")["spec"]["replicas"] == 0


def test_bad_group_name_fails_the_render(chart: Any) -> None:
    with pytest.raises(helm_python.HelmError, match="not a valid group name"):
        chart.render({**SECURE, "nodeGroups": {"Speech_CPU": {}}}, name=RELEASE, namespace="default")


# --- monitoring -------------------------------------------------------------------------------

def test_service_monitor_only_when_enabled(rendered: Rendered) -> None:
    monitors = rendered.kind("ServiceMonitor")
    enabled = rendered.values.get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
    assert len(monitors) == (1 if enabled else 0)
    for sm in monitors:
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert sm["spec"]["namespaceSelector"]["matchNames"] == [rendered.namespace]
        selector = sm["spec"]["selector"]["matchLabels"]
        selected = [s for s in rendered.kind("Service") if selects(selector, s["metadata"]["labels"])]
        # The router Service and the headless Service: the router pods and every node pod.
        assert {s["metadata"]["name"] for s in selected} == {
            rendered.router_service["metadata"]["name"], rendered.headless["metadata"]["name"]}
        for endpoint in sm["spec"]["endpoints"]:
            assert endpoint["path"] == "/metrics"
            for svc in selected:
                port = service_ports(svc)[endpoint["port"]]
                assert port["targetPort"] == "metrics"


def test_dashboard_configmap_only_when_enabled(rendered: Rendered) -> None:
    maps = rendered.kind("ConfigMap")
    enabled = rendered.values.get("grafana", {}).get("dashboard", {}).get("enabled", False)
    assert len(maps) == (1 if enabled else 0)
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "lanai"}
        assert json.loads(cm["data"]["lanai.json"]) == json.loads((CHART / "dashboards" / "lanai.json").read_text())


def test_dashboard_sidecar_label_is_configurable(chart: Any) -> None:
    values = {**SECURE, "grafana": {"dashboard": {"enabled": True, "labelKey": "dashboards", "labelValue": "lanai"}}}
    r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
    (cm,) = r.kind("ConfigMap")
    assert cm["metadata"]["labels"]["dashboards"] == "lanai"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]


# --- documentation ----------------------------------------------------------------------------

def _leaves(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for key, value in node.items() for leaf in _leaves(value, f"{path}.{key}" if path else key)]
    return [path]


def test_every_value_is_documented_in_the_readme(chart: Any) -> None:
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    groups = set(chart.values["nodeGroups"])
    for leaf in _leaves(chart.values):
        parts = leaf.split(".")
        candidates = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if parts[0] == "nodeGroups" and len(parts) > 2 and parts[1] in groups:
            generic = ".".join(["nodeGroups", "<group>", *parts[2:]])
            candidates |= {".".join(generic.split(".")[:i]) for i in range(3, len(parts) + 1)}
        assert candidates & documented, f"values.yaml key {leaf} is not in the README's values table"


def test_every_value_has_a_comment() -> None:
    """Each leaf key of values.yaml has a comment right above it, or sits in a map value documented
    as a whole (a "# --" comment above an ancestor, helm-docs style: resources, securityContext)."""
    lines = (CHART / "values.yaml").read_text().splitlines()

    def comment_above(i: int) -> str:
        """The first line of the comment block right above line i ("" when there is none)."""
        block = ""
        for ln in reversed(lines[:i]):
            if not ln.strip().startswith("#"):
                break
            block = ln.strip()
        return block

    undocumented: list[str] = []
    ancestors: list[tuple[int, int]] = []  # (indent, line index) of the enclosing keys
    list_indent: int | None = None
    for i, line in enumerate(lines):
        text = line.lstrip()
        indent = len(line) - len(text)
        if not text or text.startswith("#"):
            continue
        if list_indent is not None and (indent > list_indent or text.startswith("- ")):
            continue  # inside a block list: documented with its key
        list_indent = None
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        key, _, rest = text.partition(":")
        following = next((ln for ln in lines[i + 1:] if ln.strip() and not ln.lstrip().startswith("#")), "")
        if not rest.strip():
            if not following.lstrip().startswith("- "):
                ancestors.append((indent, i))
                continue  # a map: its keys are checked
            list_indent = indent
        if comment_above(i) or any(comment_above(j).startswith("# --") for _, j in ancestors):
            continue
        undocumented.append(f"line {i + 1}: {key.strip()}")
    assert undocumented == []


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def _lanai_commands(text: str, indented: bool = False) -> list[list[str]]:
    """Every `lanai ...` command line in shell text (also after `kubectl exec ... --`), comments and
    line continuations removed; `indented`: only indented lines (NOTES.txt's commands, not its prose)."""
    import shlex

    found = []
    for line in text.replace("\\\n", " ").splitlines():
        if indented and not line.startswith(" "):
            continue
        line = line.split(" #")[0].strip()
        if " -- lanai " in line:
            line = line.split(" -- ", 1)[1]
        line = line.split(" > ")[0]
        if line.startswith("lanai "):
            found.append(shlex.split(line)[1:])
    return found


def test_readme_commands_parse_with_lanai_argparse() -> None:
    readme = (CHART / "README.md").read_text()
    commands = [argv for block in _code_blocks(readme, "bash") for argv in _lanai_commands(block)]
    assert ["mesh", "ca"] in commands and ["mesh", "init", "--home", "./lanai-ca"] in commands
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"the chart's README runs `lanai {' '.join(argv)}`, which lanai rejects")


def test_readme_ca_secret_examples_fit_the_chart() -> None:
    """The cert-manager example makes a CA Certificate lanai can use, in the Secret the install
    commands name; the `kubectl create secret tls` example stores `lanai mesh init`'s files."""
    readme = (CHART / "README.md").read_text()
    named = set(re.findall(r"--set mesh\.caSecret=(\S+)", readme))
    assert len(named) == 1, named
    (secret,) = named
    docs = [d for block in _code_blocks(readme, "yaml") for d in yaml.safe_load_all(block)
            if d and str(d.get("apiVersion", "")).startswith("cert-manager.io/")]
    issuers = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Issuer"}
    (certificate,) = [d for d in docs if d["kind"] == "Certificate"]
    spec = certificate["spec"]
    assert spec["isCA"] is True and spec["secretName"] == secret
    assert (spec["privateKey"]["algorithm"], spec["privateKey"]["size"]) == ("ECDSA", 256), "lanai signs with ECDSA P-256"
    assert spec["privateKey"]["rotationPolicy"] == "Never", "a new CA key is a new mesh"
    assert issuers[spec["issuerRef"]["name"]]["spec"] == {"selfSigned": {}}
    assert spec["issuerRef"]["kind"] == "Issuer"
    mesh = MeshDir(Path("./lanai-ca"))
    created = re.search(r"create secret tls (\S+)\s+--cert=(\S+) --key=(\S+)", readme.replace("\\\n", " "))
    assert created, "no `kubectl create secret tls` example"
    assert created.group(1) == secret
    assert (created.group(2), created.group(3)) == (f"./{mesh.ca_cert}", f"./{mesh.ca_key}")


@pytest.mark.parametrize("scenario", ["defaults", "observed-lb", "insecure-lab"])
def test_notes_tell_clients_how_to_connect(chart: Any, scenario: str) -> None:
    values, namespace = SCENARIOS[scenario]
    r = Rendered(chart.render(values, name=RELEASE, namespace=namespace), values, namespace)
    commands = _lanai_commands(r.notes, indented=True)
    assert commands
    for argv in commands:
        args = build_parser().parse_args(argv)
        if argv[0] in ("transcribe",) or argv[:2] == ["mesh", "ls"]:
            if secure(values):
                assert args.ca == "lanai-ca.pem" and not args.plaintext
                assert bool(args.key) == mesh_values(values)["requireKeys"]
            else:
                assert args.plaintext
    assert (["mesh", "ca"] in commands) == secure(values)
    assert (["mesh", "key", "create", "me"] in commands) == (secure(values) and mesh_values(values)["requireKeys"])
