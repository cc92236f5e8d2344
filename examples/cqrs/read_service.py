"""The product read service of the CQRS example.

It subscribes to ``product.inserted`` (subscription ``read-model``), keeps its own
read model (a separate SQLite database, shaped for reading) up to date, and serves
it over HTTP: ``GET /products`` and ``GET /products/{id}``. One process runs both
the subscriber (postroom's worker runtime) and the HTTP server::

    POSTROOM_URL=sqlite:///cqrs.db python examples/cqrs/read_service.py --port 8002
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pydantic
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import postroom
from postroom.runtime.worker import Worker

TOPIC = "product.inserted"
SUBSCRIPTION = "read-model"

SCHEMA = """
CREATE TABLE IF NOT EXISTS product_view (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    price TEXT NOT NULL,
    created_at TEXT NOT NULL,
    projected_at TEXT NOT NULL
)
"""


class ProductInserted(pydantic.BaseModel):
    """The event as this service reads it (it ignores fields it does not use)."""

    id: int
    sku: str
    name: str
    price_cents: int
    created_at: str


class ReadModel:
    """The read side: one denormalised row per product, ready to serve."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def project(self, event: ProductInserted) -> None:
        """Apply one event; applying it again changes nothing (idempotent)."""
        price = f"{event.price_cents // 100}.{event.price_cents % 100:02d}"
        with self._connect() as db:
            db.execute(
                "INSERT INTO product_view VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, "
                "name = excluded.name, price = excluded.price",
                (
                    event.id,
                    event.sku,
                    event.name,
                    price,
                    event.created_at,
                    datetime.now(UTC).isoformat(),
                ),
            )

    def all(self) -> list[dict[str, Any]]:
        """Every product, by id."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM product_view ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def get(self, product_id: int) -> dict[str, Any] | None:
        """One product by id."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM product_view WHERE id = ?", (product_id,)
            ).fetchone()
        return dict(row) if row else None


def create_subscriber(model: ReadModel, url: str | None = None) -> postroom.App:
    """The postroom app whose subscriber keeps ``model`` up to date."""
    app = postroom.App(url)

    @app.subscriber(TOPIC, subscription=SUBSCRIPTION, concurrency=4)
    def on_product_inserted(event: ProductInserted) -> None:
        model.project(event)

    return app


def create_http(model: ReadModel) -> Starlette:
    """The read service's HTTP app over ``model``."""

    def list_products(request: Request) -> JSONResponse:
        return JSONResponse(model.all())

    def get_product(request: Request) -> JSONResponse:
        row = model.get(int(request.path_params["product_id"]))
        if row is None:
            return JSONResponse({"error": "no such product (yet)"}, 404)
        return JSONResponse(row)

    return Starlette(
        routes=[
            Route("/products", list_products, methods=["GET"]),
            Route("/products/{product_id:int}", get_product, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _stop_on_signal(server: uvicorn.Server) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            server.should_exit = True


async def serve(model: ReadModel, url: str | None, host: str, port: int) -> None:
    """Run the subscriber and the HTTP server until SIGTERM or SIGINT."""
    worker = Worker(create_subscriber(model, url), grace=10.0)
    server = _Server(uvicorn.Config(create_http(model), host=host, port=port))
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)  # the subscription exists from here on
        async with anyio.create_task_group() as watcher:
            watcher.start_soon(_stop_on_signal, server)
            await server.serve()
            watcher.cancel_scope.cancel()
        worker.stop()  # graceful: running handlers finish, then run() returns


def main(argv: list[str] | None = None) -> None:
    """Run the read service (``--help`` for the options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--db", default="products-read.db", help="SQLite file")
    parser.add_argument("--url", default=None, help="postroom URL (POSTROOM_URL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    anyio.run(serve, ReadModel(args.db), args.url, args.host, args.port)


if __name__ == "__main__":
    main()
