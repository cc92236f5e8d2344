"""The thumbnail pipeline's parts, each on its own, on ``memory://``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

import postroom
from postroom.demo import RESIZE_QUEUE, DataDir, Resized, ResizeJob
from postroom.demo._report import percentile
from postroom.demo.gallery import GalleryIndex
from postroom.demo.images import corrupt_image, generate_image, make_watermark
from postroom.demo.runner import upload_kind
from postroom.demo.service import create_app
from postroom.demo.worker import MissingAsset, resize_files
from postroom.model.signing import signature_header


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    folder = DataDir(tmp_path / "data")
    folder.create()
    return folder


def _job(data: DataDir, body: bytes, *, watermark: bool = False) -> ResizeJob:
    (data.uploads / "img1.jpg").write_bytes(body)
    return ResizeJob(
        image="img1", filename="img1.jpg", watermark=watermark, uploaded_at=1
    )


def test_resize_files_writes_every_size_and_describes_them(data: DataDir) -> None:
    event = resize_files(_job(data, generate_image(1)), data)
    assert sorted(event.thumbnails) == [64, 128, 256]
    for size, rel in event.thumbnails.items():
        with Image.open(data.root / rel) as thumb:
            assert max(thumb.size) == size


def test_resize_files_rejects_a_corrupt_image(data: DataDir) -> None:
    with pytest.raises(postroom.Reject, match="not a decodable image"):
        resize_files(_job(data, corrupt_image(1)), data)


def test_resize_files_needs_the_watermark_until_it_exists(data: DataDir) -> None:
    job = _job(data, generate_image(2), watermark=True)
    with pytest.raises(MissingAsset, match="watermark"):
        resize_files(job, data)
    data.watermark.write_bytes(make_watermark())
    assert resize_files(job, data).watermark


def test_gallery_index_add_is_idempotent(data: DataDir) -> None:
    index = GalleryIndex(data.gallery_db)
    event = Resized(
        image="a1",
        thumbnails={64: "t/a1/64.jpg"},
        watermark=False,
        uploaded_at=10,
        resized_at=20,
    )
    index.add(event, indexed_at=30)
    index.add(event, indexed_at=40)
    assert index.count() == 1
    entry = index.get("a1")
    assert entry is not None
    assert entry["thumbnails"] == {"64": "t/a1/64.jpg"}
    assert entry["indexed_at"] == 30


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def service(data: DataDir) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    url = f"memory://demo-{uuid.uuid4().hex}"
    app = create_app(url, data)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as http,
    ):
        yield http, url


@pytest.mark.anyio
async def test_service_upload_enqueues_a_resize_job(
    service: tuple[httpx.AsyncClient, str], data: DataDir
) -> None:
    http, url = service
    resp = await http.post(
        "/images",
        files={"file": ("cat.jpg", generate_image(3), "image/jpeg")},
        data={"watermark": "1"},
    )
    assert resp.status_code == 202
    answer = resp.json()
    async with postroom.connect_async(url) as client:
        [delivery] = await client.receive(RESIZE_QUEUE)
    job = ResizeJob.model_validate_json(delivery.body)
    assert delivery.id == answer["id"]
    assert job.image == answer["image"]
    assert job.watermark
    assert (data.uploads / job.filename).read_bytes() == generate_image(3)
    assert (await http.get(answer["status"])).json()["status"] == "pending"


@pytest.mark.anyio
async def test_service_status_follows_the_gallery_and_the_dead_letters(
    service: tuple[httpx.AsyncClient, str], data: DataDir
) -> None:
    http, url = service
    done = (await http.post("/images", content=generate_image(4))).json()
    dead = (await http.post("/images", content=corrupt_image(4))).json()
    async with postroom.connect_async(url) as client:
        for delivery in await client.receive(RESIZE_QUEUE, max_messages=2):
            job = ResizeJob.model_validate_json(delivery.body)
            try:
                event = resize_files(job, data)
            except postroom.Reject as exc:
                await client.reject(delivery, exc)
            else:
                GalleryIndex(data.gallery_db).add(event)
                await client.ack(delivery)
    status = (await http.get(done["status"])).json()
    assert status["status"] == "done"
    thumb = await http.get(status["thumbnails"]["64"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    failed = (await http.get(dead["status"])).json()
    assert (failed["status"], failed["reason"]) == ("dead", "rejected")
    assert (await http.get("/images")).json()[0]["image"] == done["image"]


@pytest.mark.anyio
async def test_service_refuses_an_empty_upload_and_unknown_images(
    service: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = service
    assert (await http.post("/images", content=b"")).status_code == 400
    assert (await http.get("/images/nothing-here")).status_code == 404
    assert (await http.get("/images/..%2Fetc")).status_code == 404


def test_upload_kind_mixes_failures_into_the_uploads() -> None:
    kinds = [upload_kind(i) for i in range(200)]
    assert (kinds.count("corrupt"), kinds.count("watermark")) == (10, 20)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99)) == (50.0, 99.0)
    assert percentile([], 50) is None


def test_cli_renders_the_summary_and_the_dead_letters() -> None:
    from collections import Counter
    from datetime import UTC, datetime

    from rich.console import Console

    from postroom.cli.demo import _dead_letter_table, _summary_table
    from postroom.demo._report import Summary

    summary = Summary(folder="/tmp/x", url="sqlite:///x.db", workers=2)
    summary.uploads = Counter(ok=17, corrupt=1, watermark=2)
    summary.dead_lettered = Counter(failed=2, rejected=1)
    summary.latencies_ms = [100.0, 300.0]
    now = datetime.now(UTC)
    message = postroom.Message(
        id="01ABC",
        queue=RESIZE_QUEUE,
        body=b"{}",
        headers={},
        enqueued_at=now,
        available_at=now,
    )
    letter = postroom.DeadLetter(
        message=message,
        queue=RESIZE_QUEUE,
        reason="failed",
        error=postroom.ErrorInfo("MissingAsset", "watermark asset is missing"),
        history=[],
        attempts=3,
        dead_at=now,
    )
    console = Console(record=True, width=100)
    console.print(_summary_table(summary.to_dict()))
    console.print(_dead_letter_table([letter]))
    text = console.export_text()
    assert "uploaded       20  (corrupt 1, ok 17, watermark 2)" in text
    assert "p50 100 ms, p99 300 ms" in text
    assert "MissingAsset: watermark asset is missing" in text


@pytest.mark.anyio
async def test_service_webhook_checks_the_signature_and_records_the_event(
    service: tuple[httpx.AsyncClient, str], data: DataDir
) -> None:
    http, url = service
    async with postroom.connect_async(url) as client:
        sub = await client.create_subscription(
            "images.resized", "webhook", push_endpoint="http://demo/hooks/resized"
        )
    assert sub.secret is not None
    event = Resized(
        image="a1",
        thumbnails={64: "t/a1/64.jpg"},
        watermark=False,
        uploaded_at=1,
        resized_at=2,
    )
    body = event.model_dump_json().encode()
    forged = {"Postroom-Signature": signature_header("not the secret", body)}
    assert (
        await http.post("/hooks/resized", content=body, headers=forged)
    ).status_code == 401
    signed = {"Postroom-Signature": signature_header(sub.secret, body), "ce-id": "e1"}
    assert (
        await http.post("/hooks/resized", content=body, headers=signed)
    ).status_code == 200
    assert GalleryIndex(data.gallery_db).notified("a1")
    junk = b'{"image": "a1"}'
    junk_headers = {"Postroom-Signature": signature_header(sub.secret, junk)}
    assert (
        await http.post("/hooks/resized", content=junk, headers=junk_headers)
    ).status_code == 400
