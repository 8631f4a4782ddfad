"""Protobuf pieces every service's responses share."""

from __future__ import annotations

from lanai.api.common.v1 import common_pb2
from lanai.services.core.admission import Timing


def served_by(node_id: str, model: str, timing: Timing) -> common_pb2.ServedBy:
    return common_pb2.ServedBy(node_id=node_id, model=model, queue_ms=timing.queue_s * 1000,
                               compute_ms=timing.compute_s * 1000)
