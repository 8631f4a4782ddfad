"""The Helm chart (helm/lanai): Helm's own linter, offline renders with several value sets, and
every rendered lanai command line checked against lanai's argparse (catches flag drift)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

helm_python = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install 'lanai[dev]'): cannot lint or render the chart")
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

from lanai.mesh.cli import build_parser  # noqa: E402
from lanai.mesh.cli.serve import config_from_args  # noqa: E402
from lanai.mesh.node import KNOWN_SERVICES  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "helm" / "lanai"
GRPC, METRICS = 50051, 9464
RELEASE = "demo"

# (values, namespace) per scenario; every rendering test runs on each.
SCENARIOS: dict[str, tuple[dict[str, Any], str]] = {
    "defaults": ({}, "default"),
    "gpu-and-cpu-groups": ({
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
        "fullnameOverride": "mesh",
        "clusterDomain": "k8s.internal",
        "grace": 120,
        "router": {"replicas": 2, "service": {"type": "LoadBalancer", "nodePorts": {"grpc": 30051},
                                               "loadBalancerSourceRanges": ["192.168.0.0/16"]}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
        "grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "lanai"}}},
    }, "monitoring"),
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
    report = helm_python.lint(CHART, values or None, strict=True, namespace=namespace)
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

def test_containers_expose_grpc_and_metrics(rendered: Rendered) -> None:
    for dep in rendered.kind("Deployment"):
        ports = {p["name"]: p for p in container(dep)["ports"]}
        assert ports["grpc"]["containerPort"] == GRPC
        assert ports["metrics"]["containerPort"] == METRICS
        assert {p["protocol"] for p in ports.values()} == {"TCP"}


def test_probes_are_grpc_health_on_the_grpc_port(rendered: Rendered) -> None:
    for dep in rendered.kind("Deployment"):
        c = container(dep)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": GRPC}, (dep["metadata"]["name"], probe)
            assert not {"httpGet", "tcpSocket", "exec"} & set(c[probe])
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
    assert (ports["grpc"]["port"], ports["grpc"]["targetPort"]) == (GRPC, "grpc")
    assert (ports["metrics"]["port"], ports["metrics"]["targetPort"]) == (METRICS, "metrics")
    nodes = rendered.deployments("node")
    assert nodes
    for node in nodes:
        assert selects(svc["spec"]["selector"], pod_labels(node)), node["metadata"]["name"]
    assert not selects(svc["spec"]["selector"], pod_labels(rendered.router))


def test_router_resolves_the_headless_service(rendered: Rendered) -> None:
    args = container(rendered.router)["args"]
    svc = rendered.headless
    domain = rendered.values.get("clusterDomain", "cluster.local")
    fqdn = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.{domain}"
    assert contains_run(args, ["--discovery", "dns", "--dns", f"{fqdn}:{GRPC}"]), args
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
        if component == "router":
            assert config.services == ()
            assert (config.mesh.discovery, config.mesh.router) == ("dns", True)
            assert config.mesh.dns_name == f"{rendered.headless['metadata']['name']}." \
                f"{rendered.namespace}.svc.{rendered.values.get('clusterDomain', 'cluster.local')}:{GRPC}"
        else:
            assert config.services and set(config.services) <= set(KNOWN_SERVICES)
            assert (config.mesh.discovery, config.mesh.router) == ("none", False)


def test_the_argparse_check_catches_flag_drift(chart: Any) -> None:
    """The check above bites: a flag lanai does not have makes argparse exit."""
    values = {"router": {"extraArgs": ["--no-such-flag"]}}
    r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
    with pytest.raises(SystemExit):
        build_parser().parse_args(container(r.router)["args"])


# --- node groups ------------------------------------------------------------------------------

def test_default_cpu_group(chart: Any) -> None:
    r = Rendered(chart.render({}, name=RELEASE, namespace="default"), {}, "default")
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
    for values in ({"nodeGroups": {"speech-cpu": {"enabled": False}, "vision-language-cpu": {"enabled": False},
                                   "only": {"replicas": 0}}},
                   {"nodeGroups": {"speech-cpu": None, "vision-language-cpu": None, "only": {"replicas": 0}}}):
        r = Rendered(chart.render(values, name=RELEASE, namespace="default"), values, "default")
        assert [pod_labels(d)["lanai/node-group"] for d in r.deployments("node")] == ["only"]
        assert r.group("only")["spec"]["replicas"] == 0


def test_bad_group_name_fails_the_render(chart: Any) -> None:
    with pytest.raises(helm_python.HelmError, match="not a valid group name"):
        chart.render({"nodeGroups": {"Speech_CPU": {}}}, name=RELEASE, namespace="default")


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
    values = {"grafana": {"dashboard": {"enabled": True, "labelKey": "dashboards", "labelValue": "lanai"}}}
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
