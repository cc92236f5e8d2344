"""``postroom.testing.samples``, run on every backend of ``BACKENDS``, and the
backend seam of the samples (expiry, ranges) called directly."""

from __future__ import annotations

import anyio

from postroom import Client
from postroom.backends.base import open_backend
from postroom.testing.samples import *  # noqa: F403
from postroom.testing.samples import _requires_samples


def test_samples_expire_and_are_read_from_a_bucket_on(client: Client) -> None:
    _requires_samples(client)

    async def check() -> tuple[list[tuple[int, str]], list[tuple[int, str]], bool]:
        backend = open_backend(client.url)
        await backend.connect()
        try:
            for bucket in (10_000, 20_000, 30_000):
                assert await backend.put_sample(bucket, f"s{bucket}", bucket + 50_000)
            again = await backend.put_sample(20_000, "late", 999_999)
            later = await backend.list_samples(20_000, 55_000)
            left = await backend.list_samples(0, 65_000)  # 10_000 has expired
            return later, left, again
        finally:
            await backend.aclose()

    later, left, again = anyio.run(check)
    assert not again  # the first writer of a bucket wins
    assert later == [(20_000, "s20000"), (30_000, "s30000")]
    assert left == [(20_000, "s20000"), (30_000, "s30000")]
