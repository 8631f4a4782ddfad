"""The web console at `/` (one page, served from the package: no build step, no CDN) and the
two lanai HTTP endpoints it needs beyond OpenAI's: the mesh's nodes, and vision on an image."""

from __future__ import annotations

from importlib import resources

from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lanai.api.vision.v1 import vision_pb2
from lanai.mesh.doors.http import Door, Handler, endpoint
from lanai.mesh.doors.params import BadParam, Params
from lanai.services.core.errors import InvalidInput

PAGES = {"/": ("index.html", "text/html; charset=utf-8"), "/console.js": ("console.js", "text/javascript"),
         "/console.css": ("console.css", "text/css")}
VISION_TASKS = ("classify", "faces", "text")
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
            # everything the page loads comes from this node: no other origin, no inline script
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                       "style-src 'self'; script-src 'self'; connect-src 'self'"}


def routes(door: Door) -> list[Route]:
    found = [Route(path, endpoint(door, path, _page(name, kind), keyed=False), methods=["GET"])
             for path, (name, kind) in PAGES.items()]
    return found + [
        Route("/lanai/v1/nodes", endpoint(door, "/lanai/v1/nodes", lambda r: nodes(door, r)), methods=["GET"]),
        Route("/lanai/v1/vision/{task}", endpoint(door, "/lanai/v1/vision/{task}", lambda r: vision(door, r)),
              methods=["POST"]),
    ]


def _page(name: str, kind: str) -> Handler:
    body = resources.files("lanai.mesh.doors").joinpath("static", name).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=kind, headers=_HEADERS)
    return serve


async def nodes(door: Door, request: Request) -> Response:
    """The nodes this node's router sees, as lanai.mesh.v1.NodeEntry in protobuf's JSON mapping."""
    entries = await door.upstream.nodes()
    return JSONResponse({"nodes": [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in entries]})


async def vision(door: Door, request: Request) -> Response:
    """POST an image (its bytes as the body, Content-Type image/...) to classify, faces or text;
    query: model, min_confidence, top_k (classify). The answer is the gRPC reply as JSON."""
    task = request.path_params["task"]
    if task not in VISION_TASKS:
        raise InvalidInput(f"unknown vision task {task[:32]!r}; use one of: {', '.join(VISION_TASKS)}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind.startswith("image/") and kind != "application/octet-stream":
        raise InvalidInput(f"send the image's bytes as the body with Content-Type image/jpeg, image/png, ...; "
                           f"not {kind or 'nothing'}")
    image = vision_pb2.Image(encoded=await request.body())
    if not image.encoded:
        raise BadParam("image", "the body is empty: send the image's bytes")
    params = Params(dict(request.query_params), form=True)
    options = vision_pb2.ImageOptions(model=params.text("model"),
                                      min_confidence=params.number("min_confidence", 0, 1) or 0.0)
    stub = door.upstream.vision()
    reply: Message
    if task == "classify":
        reply = await door.mesh_call(request, stub.Classify(vision_pb2.ClassifyRequest(
            image=image, options=options, top_k=params.integer("top_k", 1, 1000) or 0)))
    elif task == "faces":
        reply = await door.mesh_call(request, stub.DetectFaces(vision_pb2.DetectFacesRequest(image=image,
                                                                                             options=options)))
    else:
        reply = await door.mesh_call(request, stub.ReadText(vision_pb2.ReadTextRequest(image=image, options=options)))
    return JSONResponse(json_format.MessageToDict(reply, preserving_proto_field_name=True))

