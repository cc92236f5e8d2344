"""The product write service of the CQRS example.

``POST /products`` validates a product, stores it in the service's own SQLite
database and publishes a ``product.inserted`` event; ``GET /products/{id}`` reads it
back from that database. Run it with one command::

    POSTROOM_URL=sqlite:///cqrs.db python examples/cqrs/write_service.py --port 8001
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

TOPIC = "product.inserted"

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    created_at TEXT NOT NULL
)
"""


class NewProduct(pydantic.BaseModel):
    """The body of ``POST /products``."""

    sku: str = pydantic.Field(min_length=1, max_length=64)
    name: str = pydantic.Field(min_length=1, max_length=200)
    price_cents: int = pydantic.Field(ge=0)


class ProductStore:
    """The write model: the service's own SQLite database."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def insert(self, product: NewProduct) -> dict[str, Any]:
        """Store a new product (the same SKU again returns the stored one)."""
        now = datetime.now(UTC).isoformat()
        with self._connect() as db:
            db.execute(
                "INSERT INTO products (sku, name, price_cents, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (sku) DO NOTHING",
                (product.sku, product.name, product.price_cents, now),
            )
            row = db.execute(
                "SELECT * FROM products WHERE sku = ?", (product.sku,)
            ).fetchone()
        return dict(row)

    def get(self, product_id: int) -> dict[str, Any] | None:
        """One product by id."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM products WHERE id = ?", (product_id,)
            ).fetchone()
        return dict(row) if row else None


def create_app(db_path: str, postroom_url: str | None = None) -> Starlette:
    """The write service's HTTP app, publishing through ``postroom_url``."""
    store = ProductStore(db_path)
    client = postroom.AsyncClient(postroom_url)

    async def create_product(request: Request) -> JSONResponse:
        try:
            product = NewProduct.model_validate_json(await request.body())
        except pydantic.ValidationError as exc:
            return JSONResponse({"error": exc.errors(include_url=False)}, 422)
        row = await anyio.to_thread.run_sync(store.insert, product)
        # Stored first, then published: if publishing fails the client gets a 5xx
        # and retries; the SKU makes the insert idempotent and the read model's
        # upsert makes a repeated event harmless (at-least-once, end to end).
        event_id = await client.publish(TOPIC, row, headers={"sku": row["sku"]})
        return JSONResponse({**row, "event_id": event_id}, 201)

    async def get_product(request: Request) -> JSONResponse:
        row = await anyio.to_thread.run_sync(
            store.get, int(request.path_params["product_id"])
        )
        if row is None:
            return JSONResponse({"error": "no such product"}, 404)
        return JSONResponse(row)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    return Starlette(
        routes=[
            Route("/products", create_product, methods=["POST"]),
            Route("/products/{product_id:int}", get_product, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the write service (``--help`` for the options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--db", default="products-write.db", help="SQLite file")
    parser.add_argument("--url", default=None, help="postroom URL (POSTROOM_URL)")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.db, args.url), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
