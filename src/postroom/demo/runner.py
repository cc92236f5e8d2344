"""``postroom demo``: the thumbnail pipeline end to end, on SQLite, in one folder.

It starts the HTTP service and the workers as child processes, uploads generated
images over HTTP (some corrupt, some needing a watermark asset that is missing),
waits for every job to end (processed or dead letter), fixes the missing asset,
redrives the dead letters that the fix cures, waits again, and returns a
:class:`Summary` whose numbers are read back from the backend.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from ..client.core import AsyncClient
from ..model.message import DeadLetter
from ..model.names import subscription_queue_name
from ._common import (
    DATA_DIR_ENV,
    GALLERY_SUBSCRIPTION,
    RESIZE_QUEUE,
    RESIZED_TOPIC,
    WEBHOOK_PATH,
    WEBHOOK_SUBSCRIPTION,
    DataDir,
    declare,
)
from ._processes import (
    DemoError,
    Processes,
    free_port,
    listening_socket,
    postroom_command,
)
from ._report import Reporter, Snapshot, Summary, Upload, UploadKind
from .gallery import GalleryIndex
from .images import corrupt_image, generate_image, make_watermark

__all__ = ["DemoError", "DemoOptions", "DemoRun", "upload_kind"]

EVENT_QUEUES = [
    subscription_queue_name(RESIZED_TOPIC, GALLERY_SUBSCRIPTION),
    subscription_queue_name(RESIZED_TOPIC, WEBHOOK_SUBSCRIPTION),
]
_UPLOAD_CONCURRENCY = 8
_POLL_SECONDS = 0.2
_RESIZE_APP = "postroom.demo.worker:app"
_GALLERY_APP = "postroom.demo.gallery:app"
_SERVER_MODULES = ("starlette", "uvicorn", "jinja2", "prometheus_client")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How ``postroom demo`` runs."""

    images: int = 200
    workers: int = 2
    folder: Path | None = None
    url: str | None = None  # default: a SQLite database in the folder

    @property
    def malformed_jobs(self) -> int:
        """Jobs sent in an outdated format, which postroom dead-letters as
        ``undecodable``: one per hundred images, at least one."""
        return max(1, self.images // 100)


def upload_kind(index: int) -> UploadKind:
    """Which kind upload ``index`` is: 1 in 20 corrupt, 1 in 10 watermarked."""
    if index % 20 == 7:
        return "corrupt"
    if index % 10 == 3:
        return "watermark"
    return "ok"


class DemoRun:
    """One run of the demo; a context manager that stops its processes on exit."""

    def __init__(self, options: DemoOptions, reporter: Reporter) -> None:
        if options.images < 1 or options.workers < 1:
            raise DemoError("--images and --workers must be at least 1")
        self.options = options
        self.reporter = reporter
        folder = options.folder or Path(tempfile.mkdtemp(prefix="postroom-demo-"))
        self.data = DataDir(folder.resolve())
        self.data.create()
        self.url = options.url or f"sqlite:///{self.data.root / 'postroom.db'}"
        self._listener = listening_socket()
        self.port: int = self._listener.getsockname()[1]
        self.service_url = f"http://127.0.0.1:{self.port}"
        env = {"POSTROOM_URL": self.url, DATA_DIR_ENV: str(self.data.root)}
        self.processes = Processes(self.data.root, env)
        self.gallery = GalleryIndex(self.data.gallery_db)
        self.uploads: list[Upload] = []
        self.jobs = options.images + options.malformed_jobs
        self._first_upload_ms = 0
        self._redriven: set[str] = set()
        self.summary = Summary(
            folder=str(self.data.root),
            url=self.url,
            workers=options.workers,
            service_url=self.service_url,
        )

    def __enter__(self) -> DemoRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.processes.children:
            self.reporter.phase("stop", "stopping every process the demo started")
        self.processes.stop()
        self._listener.close()
        self.summary.processes = [
            {"name": c.name, "pid": c.proc.pid, "exit_code": c.proc.returncode}
            for c in self.processes.children
            if c.proc is not None
        ]

    def run(self) -> Summary:
        """Run the whole scenario; the processes keep running until exit."""
        return anyio.run(self._main)

    def start_dashboard(self) -> str | None:
        """Start ``postroom serve`` on the demo's backend; its URL, or ``None``
        when the ``server`` extra is not installed."""
        if any(importlib.util.find_spec(m) is None for m in _SERVER_MODULES):
            return None
        port = free_port()
        self.processes.start(
            "dashboard",
            postroom_command(
                "serve",
                "--url",
                self.url,
                "--port",
                str(port),
                "--log-level",
                "warning",
            ),
        )
        return f"http://127.0.0.1:{port}/"

    def wait_until_interrupted(self) -> None:
        """Block until Ctrl-C (``--keep``), or until a child process dies."""
        try:
            while True:
                self.processes.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            return

    # -- the scenario --------------------------------------------------------------

    async def _main(self) -> Summary:
        started = time.monotonic()
        async with AsyncClient(self.url) as client:
            if RESIZE_QUEUE in await client.queues():
                raise DemoError(
                    f"{self.url} already has the queue {RESIZE_QUEUE}: the demo "
                    "counts what it does, so it needs a fresh backend (a new --dir, "
                    "or an empty database for --url)"
                )
            await declare(client, webhook_url=self.service_url + WEBHOOK_PATH)
            await self._start()
            first = await self._first_pass(client)
            letters = await client.dead_letters(RESIZE_QUEUE, limit=self.jobs)
            self.reporter.dead_letters(letters)
            await self._fix_and_redrive(client, letters)
            await self._finish(client, first)
        self.summary.elapsed_seconds = time.monotonic() - started
        return self.summary

    async def _start(self) -> None:
        w = self.options.workers
        self.reporter.phase(
            "start",
            f"starting the thumbnail service on {self.service_url}, {w} resize "
            f"worker process{'es' if w > 1 else ''} and the gallery subscriber "
            "(which also pushes the webhooks)",
        )
        # Every child watches this process: if the demo is killed outright (no
        # chance to stop them), they stop by themselves instead of lingering.
        me = str(os.getpid())
        fd = self._listener.fileno()
        self.processes.start(
            "service",
            [
                *(sys.executable, "-m", "postroom.demo.service"),
                *("--fd", str(fd), "--parent-pid", me),
            ],
            pass_fds=(fd,),
        )
        self._listener.close()  # the service holds it now
        # One process per command: the demo starts and watches them itself.
        watch = ("--parent-pid", me, "--processes", "1")
        for i in range(1, w + 1):
            self.processes.start(
                f"worker-{i}", postroom_command("worker", _RESIZE_APP, *watch)
            )
        # --push: the gallery's process also delivers the webhook subscription,
        # which goes to this machine's loopback: allowed here by name.
        allow = ("--push-allow", "127.0.0.1")
        gallery = postroom_command("worker", _GALLERY_APP, "--push", *allow, *watch)
        self.processes.start("gallery", gallery)
        await self._wait_healthy()

    async def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.service_url) as http:
            while True:
                self.processes.check()
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the service did not answer on {self.service_url} within "
                        f"{timeout:.0f} s; see {self.data.root / 'logs'}"
                    )
                await anyio.sleep(0.1)

    async def _first_pass(self, client: AsyncClient) -> Snapshot:
        n, bad = self.options.images, self.options.malformed_jobs
        self.reporter.phase(
            "upload",
            f"uploading {n} images over HTTP (some corrupt, some watermarked while "
            f"the watermark is missing) and {bad} job{'s' if bad > 1 else ''} in an "
            "outdated format",
        )
        self._first_upload_ms = int(time.time() * 1000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._upload_all)
            tg.start_soon(self._send_malformed, client)
            snap = await self._wait_settled(client, "the first pass")
        return snap

    async def _upload_all(self) -> None:
        limiter = anyio.CapacityLimiter(_UPLOAD_CONCURRENCY)
        async with (
            httpx.AsyncClient(base_url=self.service_url, timeout=30.0) as http,
            anyio.create_task_group() as tg,
        ):
            for index in range(self.options.images):
                tg.start_soon(self._upload_one, http, limiter, index)

    async def _upload_one(
        self, http: httpx.AsyncClient, limiter: anyio.CapacityLimiter, index: int
    ) -> None:
        kind = upload_kind(index)
        async with limiter:
            if kind == "corrupt":
                body = corrupt_image(index)
            else:
                body = await anyio.to_thread.run_sync(generate_image, index)
            form = {"watermark": "1"} if kind == "watermark" else {}
            files = {"file": (f"photo-{index:04d}.jpg", body, "image/jpeg")}
            resp = await http.post("/images", files=files, data=form)
        if resp.status_code != 202:
            raise DemoError(
                f"upload {index} answered {resp.status_code}: {resp.text[:200]}"
            )
        answer = resp.json()
        self.uploads.append(Upload(index, kind, answer["image"], answer["id"]))
        self.summary.uploads[kind] += 1

    async def _send_malformed(self, client: AsyncClient) -> None:
        # An old client still sends {"image": ..., "path": ...}: the worker never
        # sees these, postroom dead-letters them as undecodable.
        for k in range(self.options.malformed_jobs):
            await client.send(RESIZE_QUEUE, {"image": f"legacy-{k}", "path": "x.png"})
            self.summary.malformed_jobs += 1

    async def _snapshot(self, client: AsyncClient) -> Snapshot:
        st = await client.stats(RESIZE_QUEUE)
        events = [await client.stats(q) for q in EVENT_QUEUES]
        counters = await client.counters([RESIZE_QUEUE])
        gallery = await anyio.to_thread.run_sync(self.gallery.count)
        webhooks = await anyio.to_thread.run_sync(self.gallery.notified_count)
        return Snapshot(
            jobs=self.jobs,
            uploaded=len(self.uploads),
            ready=st.ready,
            delayed=st.delayed,
            in_flight=st.in_flight,
            dead=st.dead,
            acked=counters[RESIZE_QUEUE]["acked"],
            retried=counters[RESIZE_QUEUE]["retried"],
            gallery=gallery,
            webhooks=webhooks,
            events_pending=sum(e.ready + e.delayed + e.in_flight for e in events),
        )

    async def _wait_settled(self, client: AsyncClient, what: str) -> Snapshot:
        timeout = 60.0 + 0.5 * self.jobs
        deadline = time.monotonic() + timeout
        while True:
            self.processes.check()
            snap = await self._snapshot(client)
            self.reporter.progress(snap)
            if snap.settled:
                return snap
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{what} did not finish within {timeout:.0f} s ({snap}); the "
                    f"logs are in {self.data.root / 'logs'}"
                )
            await anyio.sleep(_POLL_SECONDS)

    async def _fix_and_redrive(
        self, client: AsyncClient, letters: list[DeadLetter]
    ) -> None:
        self.summary.dead_lettered = Counter(d.reason for d in letters)
        fixable = [d.id for d in letters if d.reason == "failed"]
        self.reporter.phase(
            "fix",
            f"{len(fixable)} jobs failed because the watermark asset is missing: "
            f"creating {self.data.watermark}",
        )
        await anyio.Path(self.data.watermark).write_bytes(make_watermark())
        kept = len(letters) - len(fixable)
        self.reporter.phase(
            "redrive",
            f"redriving those {len(fixable)}; the other {kept} (corrupt images, "
            "outdated jobs) stay dead letters: no fix makes them valid",
        )
        if fixable:
            moved = await client.redrive(RESIZE_QUEUE, ids=fixable)
            self.summary.redriven = len(moved)
            self._redriven = set(moved)
            await self._wait_settled(client, "the redrive")

    async def _finish(self, client: AsyncClient, first: Snapshot) -> None:
        snap = await self._snapshot(client)
        self.reporter.progress(snap)
        entries = await anyio.to_thread.run_sync(self.gallery.all)
        images = {u.message_id: u.image for u in self.uploads}
        redriven_images = {images[m] for m in self._redriven if m in images}
        first_pass = [e for e in entries if e["image"] not in redriven_images]
        s = self.summary
        s.processed = snap.acked
        s.processed_first_pass = first.acked
        s.retried = snap.retried
        s.gallery = snap.gallery
        s.webhooks = snap.webhooks
        s.redriven_processed = sum(e["image"] in redriven_images for e in entries)
        letters = await client.dead_letters(RESIZE_QUEUE, limit=self.jobs)
        s.dead_at_end = Counter(d.reason for d in letters)
        s.latencies_ms = [float(e["indexed_at"] - e["uploaded_at"]) for e in first_pass]
        if first_pass:
            last = max(e["indexed_at"] for e in first_pass)
            s.first_pass_seconds = (last - self._first_upload_ms) / 1000
        self._account({e["image"] for e in entries}, {d.id for d in letters})

    def _account(self, indexed: set[str], dead: set[str]) -> None:
        """Check that every upload ended in the gallery or as a dead letter."""
        lost = [
            u
            for u in self.uploads
            if u.image not in indexed and u.message_id not in dead
        ]
        s = self.summary
        ended = s.processed + sum(s.dead_at_end.values())
        if lost or ended != self.jobs or s.webhooks != s.processed:
            raise DemoError(
                f"{len(lost)} uploads neither processed nor dead-lettered, "
                f"{ended} of {self.jobs} jobs ended, {s.webhooks} of "
                f"{s.processed} webhooks received: see {self.data.root / 'logs'}"
            )
        self.reporter.phase(
            "done",
            f"every job is accounted for: {s.processed} processed + "
            f"{sum(s.dead_at_end.values())} dead letters = {self.jobs} jobs",
        )
