"""`lanai vision classify|faces|ocr IMAGE`: call a node's (or router's) Vision service
(`lanai vision watch` streams a video: lanai.mesh.cli.watch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from lanai.mesh.cli import connect, watch
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc


def add_parser(commands: Any) -> None:
    p = commands.add_parser("vision", help="classify an image, find faces or read text on a node; watch a video live",
                            description="Send an image (PNG, JPEG, WebP, BMP, GIF) to a node's Vision service.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for task, text in (("classify", "ImageNet labels with scores"), ("faces", "faces with boxes and landmarks"),
                       ("ocr", "lines of text with boxes")):
        t = tasks.add_parser(task, help=text)
        t.add_argument("image", type=Path, help="image file")
        connect.add_flags(t)
        t.add_argument("--model", default="", help="model name (default: the node's default for the task)")
        t.add_argument("--min-confidence", type=float, default=0.0, help="drop results below this (0 to 1)")
        t.add_argument("--max-side", type=int, default=0, help="downscale to this longest side first (pixels)")
        if task == "classify":
            t.add_argument("--top", type=int, default=5, help="labels to print (default 5)")
        t.add_argument("--json", action="store_true", help="print the response as JSON")
        t.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds (default 60)")
        t.set_defaults(run=run)
    watch.add_parser(tasks)


def run(args: argparse.Namespace) -> int:
    try:
        data = args.image.read_bytes()
    except OSError as exc:
        print(f"lanai vision: cannot read {args.image}: {exc.strerror}", file=sys.stderr)
        return 2
    image = vision_pb2.Image(encoded=data)
    options = vision_pb2.ImageOptions(model=args.model, min_confidence=args.min_confidence, max_side=args.max_side)
    size = 64 * 1024 * 1024
    with connect.channel(args, [("grpc.max_send_message_length", size)]) as channel:
        stub = vision_pb2_grpc.VisionStub(channel)
        try:
            if args.task == "classify":
                response: Any = stub.Classify(vision_pb2.ClassifyRequest(image=image, options=options, top_k=args.top),
                                              timeout=args.timeout)
            elif args.task == "faces":
                response = stub.DetectFaces(vision_pb2.DetectFacesRequest(image=image, options=options),
                                            timeout=args.timeout)
            else:
                response = stub.ReadText(vision_pb2.ReadTextRequest(image=image, options=options),
                                         timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"lanai vision {args.task}: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
            return 1
    if args.json:
        print(json_format.MessageToJson(response))
        return 0
    print("\n".join(_lines(args.task, response)) or "(nothing found)")
    served, size_pb = response.served_by, response.image_size
    print(f"({size_pb.width}x{size_pb.height} image on {served.node_id} with {served.model}: "
          f"queued {served.queue_ms:.0f} ms, computed {served.compute_ms:.0f} ms)", file=sys.stderr)
    return 0


def _lines(task: str, response: Any) -> list[str]:
    if task == "classify":
        return [f"{label.score:6.1%}  {label.name}  (class {label.class_id})" for label in response.labels]
    if task == "faces":
        return [f"face {i + 1}: {f.confidence:.1%} at ({f.box.x_min:.0f}, {f.box.y_min:.0f})-"
                f"({f.box.x_max:.0f}, {f.box.y_max:.0f}); eyes ({f.landmarks.left_eye.x:.0f}, "
                f"{f.landmarks.left_eye.y:.0f}) ({f.landmarks.right_eye.x:.0f}, {f.landmarks.right_eye.y:.0f})"
                for i, f in enumerate(response.faces)]
    return [f"{line.confidence:6.1%}  {line.text}" for line in response.lines]
