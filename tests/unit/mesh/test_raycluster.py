"""The pure parts of lanai on Ray: actor names, scaling plans, flags (Ray itself is tested on a
real cluster in tests/multihost/test_ray_mesh.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanai.mesh.cli import build_parser
from lanai.mesh.cli.cluster import parse_size
from lanai.mesh.presence import MeshConfig
from lanai.mesh.raycluster import actor, cluster


def test_names_round_trip_and_other_actors_are_not_ours() -> None:
    assert cluster.parse_name(cluster.actor_name("speech", 12)) == ("speech", 12)
    assert cluster.service_of("lanai-vision-0") == "vision"
    for other in ("speech-0", "lanai-speech", "lanai-speech-x", "someone-lanai-speech-0", "lanai-Speech-0"):
        assert cluster.parse_name(other) is None and cluster.service_of(other) == "", other


def test_plan_scales_each_named_service_and_leaves_the_rest() -> None:
    running = ["lanai-speech-0", "lanai-speech-2", "lanai-vision-0", "lanai-vision-1", "other-actor"]
    start, stop = cluster.plan({"speech": 2, "vision": 1, "language": 1}, running)
    assert start == ["lanai-speech-1", "lanai-language-0"]  # fills the gap first
    assert stop == ["lanai-speech-2", "lanai-vision-1"]
    assert cluster.plan({"speech": 0}, running) == ([], ["lanai-speech-0", "lanai-speech-2"])
    assert cluster.plan({}, running) == ([], [])


def test_resources_ask_only_for_what_was_given() -> None:
    assert cluster.Resources().options() == {"num_cpus": 1.0}
    assert cluster.Resources(0.5, 1, 2 << 30, {"apple_silicon": 1}).options() == {
        "num_cpus": 0.5, "num_gpus": 1, "memory": 2 << 30, "resources": {"apple_silicon": 1}}


@pytest.mark.parametrize(("text", "size"), [("2GiB", 2 << 30), ("800MiB", 800 << 20), ("1.5G", 3 << 29),
                                             ("1048576", 1 << 20), ("512k", 512 << 10)])
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_memory_size_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="write e.g. 2GiB"):
        parse_size("two gigs")


def test_the_actor_node_config_fixes_ports_and_keeps_identity_per_actor(tmp_path: Path) -> None:
    config = actor.node_config("lanai-speech-3", ["--services", "speech", "--home", str(tmp_path), "--insecure",
                                                  "--speech-models", "tiny.en", "--metrics-port", "-1"])
    assert (config.host, config.port, config.mesh_port, config.metrics_port) == ("0.0.0.0", 0, 0, None)
    assert config.node_id == "lanai-speech-3" and not config.mesh.router and config.mesh.backends == ()
    assert config.home == tmp_path / "ray" / "lanai-speech-3"
    assert (config.home / "models").resolve() == (tmp_path / "models").resolve()  # one model cache per machine
    assert config.config_of("speech").models == ("tiny.en",)


def test_discovery_backends_combine() -> None:
    assert MeshConfig(discovery="mdns,ray").backends == ("mdns", "ray")
    assert MeshConfig(discovery="none").backends == ()
    for bad in ("mdns,carrier-pigeon", "none,ray"):
        with pytest.raises(ValueError, match="unknown discovery"):
            MeshConfig(discovery=bad).validate()
    args = build_parser().parse_args(["router", "--discovery", "mdns,ray", "--ray-address", "ray://head:10001"])
    assert (args.discovery, args.ray_address, args.ray_namespace) == ("mdns,ray", "ray://head:10001", "lanai")


def test_an_actor_on_a_machine_holding_the_ca_starts_from_a_copy(tmp_path: Path) -> None:
    """As a Helm pod given the CA Secret: the actor's own mesh dir gets the CA (and policy), once."""
    from lanai.mesh.security.store import MeshDir

    machine = MeshDir(tmp_path)
    for path, data in ((machine.ca_cert, b"cert"), (machine.ca_key, b"key"), (machine.policy, b"{}")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    own = MeshDir(actor.actor_home(tmp_path, "lanai-vision-0"))
    assert (own.ca_cert.read_bytes(), own.ca_key.read_bytes(), own.policy.read_bytes()) == (b"cert", b"key", b"{}")
    assert own.ca_key.stat().st_mode & 0o077 == 0
    own.ca_cert.write_bytes(b"renewed by the node")
    actor.actor_home(tmp_path, "lanai-vision-0")  # a restart keeps what the node has made of it
    assert own.ca_cert.read_bytes() == b"renewed by the node"


def test_a_machine_without_the_ca_gives_the_actor_nothing_to_start_from(tmp_path: Path) -> None:
    from lanai.mesh.security.store import MeshDir

    MeshDir(tmp_path).ca_cert.parent.mkdir(parents=True)
    MeshDir(tmp_path).ca_cert.write_bytes(b"a member's copy of the CA certificate")
    assert not MeshDir(actor.actor_home(tmp_path, "lanai-speech-0")).exists()  # it joins with --join


@pytest.mark.parametrize(("argv", "backends"), [
    ([], ("mdns",)), (["--dns", "lanai-nodes"], ("dns",)), (["--peers", "a:1", "--discovery", "none"], ("static",)),
    (["--dns", "lanai-nodes", "--discovery", "ray"], ("dns", "ray")), (["--discovery", "mdns,ray"], ("mdns", "ray")),
    (["--discovery", "none"], ())])
def test_peers_and_dns_replace_mdns_but_keep_ray(argv: list[str], backends: tuple[str, ...]) -> None:
    from lanai.mesh.cli.serve import config_from_args

    assert config_from_args(build_parser().parse_args(["router", *argv])).mesh.backends == backends
