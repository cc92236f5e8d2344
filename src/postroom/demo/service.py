"""The thumbnail HTTP service: uploads in, resize jobs out.

- ``POST /images``: an image as a multipart ``file`` field (``curl -F file=@cat.jpg``)
  or as the raw request body; ``watermark=1`` (form field or query parameter) asks
  for a watermark. The file is stored in the data folder and a :class:`ResizeJob` is
  sent to ``images.resize``; the answer is ``202`` with the message id and the
  image id.
- ``GET /images/{image}``: ``pending``, ``done`` (with the thumbnail URLs) or
  ``dead`` (with the dead letter's reason and error).
- ``GET /images``: the gallery. ``GET /thumbnails/...``: the thumbnail files.
- ``POST /hooks/resized``: the endpoint of the ``webhook`` push subscription of
  ``images.resized`` (a CloudEvent signed with the subscription's secret; the
  signature is checked, 401 otherwise). It records that the image was announced.
- ``GET /healthz``.

Run it with ``python -m postroom.demo.service --port 8000`` (the backend from
``POSTROOM_URL``, the data folder from ``THUMBNAILER_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pydantic
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..client.core import AsyncClient
from ..model.errors import DeadLetterNotFound, SubscriptionNotFound
from ..model.ids import new_id
from ..model.signing import verify_signature
from ._common import (
    RESIZE_QUEUE,
    RESIZED_TOPIC,
    WEBHOOK_PATH,
    WEBHOOK_SUBSCRIPTION,
    DataDir,
    Resized,
    ResizeJob,
    declare,
    valid_image_id,
)
from .gallery import GalleryIndex

__all__ = ["MAX_UPLOAD_BYTES", "create_app", "main"]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
_TRUE = {"1", "true", "yes", "on"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_upload(request: Request) -> tuple[bytes, str, bool]:
    """The uploaded bytes, the original file name and the watermark flag."""
    watermark = request.query_params.get("watermark", "").lower() in _TRUE
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        async with request.form(max_part_size=MAX_UPLOAD_BYTES) as form:
            file = form.get("file")
            flag = form.get("watermark")
            if isinstance(flag, str):
                watermark = watermark or flag.lower() in _TRUE
            if not isinstance(file, UploadFile):
                return b"", "", watermark
            return await file.read(), file.filename or "", watermark
    return await request.body(), "", watermark


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    suffix = name[dot:].lower() if dot >= 0 else ""
    return suffix if _SUFFIX.match(suffix) else ".img"


async def upload(request: Request) -> JSONResponse:
    """``POST /images``: store the upload and enqueue its resize job."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        return _error(413, f"uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    body, name, watermark = await _read_upload(request)
    if not body:
        return _error(400, "send an image as the 'file' form field or as the body")
    if len(body) > MAX_UPLOAD_BYTES:
        return _error(413, f"uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    data: DataDir = request.app.state.data
    client: AsyncClient = request.app.state.client
    image = new_id().lower()
    job = ResizeJob(
        image=image,
        filename=image + _suffix(name),
        watermark=watermark,
        uploaded_at=int(time.time() * 1000),
    )
    await anyio.Path(data.uploads / job.filename).write_bytes(body)
    message_id = await client.send(RESIZE_QUEUE, job)
    record = {**job.model_dump(), "message_id": message_id, "name": name}
    await anyio.Path(data.upload_record(image)).write_text(json.dumps(record))
    return JSONResponse(
        {"id": message_id, "image": image, "status": f"/images/{image}"},
        status_code=202,
    )


def _thumbnail_urls(entry: dict[str, Any]) -> dict[str, str]:
    return {size: "/" + path for size, path in sorted(entry["thumbnails"].items())}


async def image_status(request: Request) -> JSONResponse:
    """``GET /images/{image}``: where the image is in the pipeline."""
    image = request.path_params["image"]
    data: DataDir = request.app.state.data
    record_path = anyio.Path(data.upload_record(image))
    if not valid_image_id(image) or not await record_path.exists():
        return _error(404, f"no image {image!r}")
    record = json.loads(await record_path.read_text())
    index = GalleryIndex(data.gallery_db)
    entry = await anyio.to_thread.run_sync(index.get, image)
    answer: dict[str, Any] = {"image": image, "id": record["message_id"]}
    if entry is not None:
        notified = await anyio.to_thread.run_sync(index.notified, image)
        return JSONResponse(
            {
                **answer,
                "status": "done",
                "thumbnails": _thumbnail_urls(entry),
                "webhook": notified,
            }
        )
    client: AsyncClient = request.app.state.client
    try:
        dead = await client.dead_letter(RESIZE_QUEUE, record["message_id"])
    except DeadLetterNotFound:
        return JSONResponse({**answer, "status": "pending"})
    error = dead.error.message if dead.error else None
    return JSONResponse(
        {**answer, "status": "dead", "reason": dead.reason, "error": error}
    )


async def gallery(request: Request) -> JSONResponse:
    """``GET /images``: every image whose thumbnails are ready."""
    data: DataDir = request.app.state.data
    entries = await anyio.to_thread.run_sync(GalleryIndex(data.gallery_db).all)
    return JSONResponse(
        [{"image": e["image"], "thumbnails": _thumbnail_urls(e)} for e in entries]
    )


async def _webhook_secret(request: Request) -> str | None:
    state = request.app.state
    if getattr(state, "webhook_secret", None) is None:
        client: AsyncClient = state.client
        try:
            sub = await client.subscription(RESIZED_TOPIC, WEBHOOK_SUBSCRIPTION)
        except SubscriptionNotFound:
            return None
        state.webhook_secret = sub.secret
    secret: str | None = state.webhook_secret
    return secret


async def resized_hook(request: Request) -> JSONResponse:
    """``POST /hooks/resized``: the ``webhook`` push subscription of
    ``images.resized``, signed with its secret."""
    body = await request.body()
    secret = await _webhook_secret(request)
    if secret is not None and not verify_signature(secret, request.headers, body):
        request.app.state.webhook_secret = None  # recreated with a new secret?
        secret = await _webhook_secret(request)
        if secret is not None and not verify_signature(secret, request.headers, body):
            return _error(401, "missing or invalid Postroom-Signature")
    if secret is None:
        return _error(404, f"no push subscription {WEBHOOK_SUBSCRIPTION!r}")
    try:
        event = Resized.model_validate_json(body)
    except pydantic.ValidationError as exc:
        return _error(400, f"not an images.resized event: {exc.error_count()} errors")
    data: DataDir = request.app.state.data
    index = GalleryIndex(data.gallery_db)
    event_id = request.headers.get("ce-id", "")
    await anyio.to_thread.run_sync(index.notify, event.image, event_id)
    return JSONResponse({"ok": True})


async def healthz(request: Request) -> JSONResponse:
    """``GET /healthz``."""
    return JSONResponse({"ok": True})


def create_app(url: str | None = None, data: DataDir | None = None) -> Starlette:
    """The service for backend ``url`` (default ``POSTROOM_URL``) and data folder."""
    folder = data or DataDir.from_env()
    folder.create()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncClient(url) as client:
            await declare(client)
            app.state.client = client
            yield

    app = Starlette(
        routes=[
            Route("/images", upload, methods=["POST"]),
            Route("/images", gallery, methods=["GET"]),
            Route("/images/{image}", image_status, methods=["GET"]),
            Route(WEBHOOK_PATH, resized_hook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Mount("/thumbnails", StaticFiles(directory=folder.thumbnails)),
        ],
        lifespan=lifespan,
    )
    app.state.data = folder
    return app


def _stop_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown


def main(argv: list[str] | None = None) -> None:
    """Run the service with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description="The postroom thumbnail service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--fd", type=int, help="Serve on this inherited listening socket instead."
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--parent-pid", type=int, help="Stop when this process goes away."
    )
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(
            target=_stop_with_parent, args=(args.parent_pid,), daemon=True
        ).start()
    config = uvicorn.Config(
        create_app(), host=args.host, port=args.port, log_level=args.log_level
    )
    server = uvicorn.Server(config)
    if args.fd is None:
        server.run()
    else:
        server.run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
