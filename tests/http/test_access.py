"""Who reaches what: token patterns on the dashboard and /metrics, the open
server's Host and Origin checks, security headers, push targets (issue 10)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN, OPS, SENDER, Server, start_server, stop_server


def _status(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text


@contextmanager
def _signed_in(server: Server, token: str) -> Iterator[httpx.Client]:
    """A browser-like client holding the dashboard's cookie for ``token``."""
    with server.client() as http:
        origin = {"origin": server.base}
        login = http.post("/ui/login", data={"token": token}, headers=origin)
        assert login.status_code == 303, login.text
        yield http


@pytest.fixture
def names(secured: Server) -> Iterator[tuple[str, str]]:
    """A queue the OPS token covers (``orders.*``) and one it does not, each
    with one message and one dead letter."""
    suffix = uuid.uuid4().hex[:8]
    covered, other = f"orders.{suffix}", f"billing.{suffix}"
    with secured.client(ADMIN) as admin:
        for q in (covered, other):
            for n in range(2):
                admin.post(f"/v1/queues/{q}/messages", json={"body": n})
            [m] = admin.post(f"/v1/queues/{q}/receive", json={}).json()["messages"]
            admin.post(f"/v1/queues/{q}/reject", json={"receipt": m["receipt"]})
    yield covered, other


def test_dashboard_applies_the_token_patterns(
    secured: Server, names: tuple[str, str]
) -> None:
    covered, other = names
    with _signed_in(secured, OPS) as browser:
        index = browser.get("/").text
        assert covered in index and other not in index
        listed = browser.get("/ui/overview.json").json()["queues"]
        assert {q["queue"] for q in listed} == {
            q["queue"] for q in listed if q["queue"].startswith("orders.")
        }
        assert covered in {q["queue"] for q in listed}
        assert browser.get(f"/ui/queues/{covered}").status_code == 200
        _status(browser.get(f"/ui/queues/{other}"), 403)
        with secured.client(ADMIN) as admin:
            dead = admin.get(f"/v1/queues/{other}/dead-letters").json()
        dead_id = dead["dead_letters"][0]["id"]
        _status(browser.get(f"/ui/queues/{other}/dead/{dead_id}"), 403)
        origin = {"origin": secured.base}
        for action, form in (("purge", {"dead": "1"}), ("redrive", {"all": "1"})):
            resp = browser.post(
                f"/ui/queues/{other}/{action}", data=form, headers=origin
            )
            _status(resp, 403)
    with secured.client(ADMIN) as admin:
        stats = admin.get(f"/v1/queues/{other}").json()
    assert (stats["ready"], stats["dead"]) == (1, 1)  # untouched


def test_dashboard_redrive_needs_an_explicit_choice(
    secured: Server, names: tuple[str, str]
) -> None:
    covered, _ = names
    origin = {"origin": secured.base}
    with _signed_in(secured, OPS) as browser:
        nothing = browser.post(f"/ui/queues/{covered}/redrive", headers=origin)
        assert nothing.status_code == 303
        assert "select+the+dead+letters" in nothing.headers["location"]
        _status(browser.post(f"/ui/queues/{covered}/purge", headers=origin), 400)
        with secured.client(ADMIN) as admin:
            assert admin.get(f"/v1/queues/{covered}").json()["dead"] == 1
        every = browser.post(
            f"/ui/queues/{covered}/redrive", data={"all": "1"}, headers=origin
        )
        assert "redrove+1" in every.headers["location"]


def test_metrics_list_only_the_queues_the_token_covers(
    secured: Server, names: tuple[str, str]
) -> None:
    covered, other = names
    with secured.client(SENDER) as sender:  # send on orders.*
        text = sender.get("/metrics").text
    assert f'queue="{covered}"' in text and f'queue="{other}"' not in text
    with secured.client(ADMIN) as admin:
        text = admin.get("/metrics").text
    assert f'queue="{covered}"' in text and f'queue="{other}"' in text


def test_dashboard_cookie_needs_this_servers_origin_on_v1(
    secured: Server, queue: str
) -> None:
    url = f"/v1/queues/{queue}/messages"
    with _signed_in(secured, ADMIN) as browser:
        assert browser.get("/v1/queues").status_code == 200  # reads are fine
        _status(browser.post(url, json={"body": 1}), 403)  # no Origin
        evil = {"origin": "https://evil.example"}
        _status(browser.post(url, json={"body": 1}, headers=evil), 403)
        _status(browser.post(url, json={"body": 1}, headers={"origin": "null"}), 403)
        own = {"origin": secured.base}
        _status(browser.post(url, json={"body": 1}, headers=own), 201)
    with secured.client(ADMIN) as program:  # a bearer header needs no Origin
        _status(program.post(url, json={"body": 2}), 201)
        assert program.get(f"/v1/queues/{queue}").json()["ready"] == 2


def test_open_server_answers_only_to_its_own_host_names(server: Server) -> None:
    port = server.base.rsplit(":", 1)[1]
    with server.client() as http:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", "[::1]"):
            assert http.get("/v1/queues", headers={"host": host}).status_code == 200
        for host in (f"evil.example:{port}", "attacker.localhost.evil", "[::2]"):
            resp = http.get("/", headers={"host": host})
            _status(resp, 400)
            assert "--allow-host" in resp.json()["detail"]


def test_allow_host_adds_a_name(tmp_path: Path) -> None:
    srv = start_server(tmp_path, extra=("--allow-host", "postroom.test"))
    try:
        with srv.client() as http:
            headers = {"host": "postroom.test:8000"}
            assert http.get("/v1/queues", headers=headers).status_code == 200
            _status(http.get("/v1/queues", headers={"host": "other.test"}), 400)
    finally:
        stop_server(srv)


def test_open_server_refuses_cross_site_writes(server: Server, queue: str) -> None:
    url = f"/v1/queues/{queue}/messages"
    with server.client() as http:
        for origin in ("https://evil.example", "null", "http://127.0.0.1:1"):
            resp = http.post(url, json={"body": 1}, headers={"origin": origin})
            _status(resp, 403)
        # What a page can send without a CORS preflight: a "simple" request.
        form = {"content-type": "text/plain"}
        _status(http.post(url, content=b'{"body": 1}', headers=form), 415)
        assert http.get(f"/v1/queues/{queue}").status_code == 404  # nothing stored
        _status(http.post(url, json={"body": 1}), 201)  # programs send no Origin
        own = {"origin": server.base}
        _status(http.post(url, json={"body": 2}, headers=own), 201)


def test_every_answer_carries_security_headers(server: Server, queue: str) -> None:
    with server.client() as http:
        for resp in (
            http.get("/"),
            http.get("/v1/queues"),
            http.get("/static/style.css"),
            http.get("/no/such/page"),
            http.post(f"/v1/queues/{queue}/receive", json={}),
            http.get("/", headers={"host": "evil.example"}),
        ):
            assert resp.headers["x-frame-options"] == "DENY"
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["referrer-policy"] == "same-origin"
            csp = resp.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:6379/",
        "http://localhost:8000/hook",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "http://[::ffff:192.168.1.1]/",
    ],
)
def test_push_subscriptions_to_internal_targets_are_refused(
    http: httpx.Client, queue: str, endpoint: str
) -> None:
    subs = f"/v1/topics/{queue}/subscriptions"
    resp = http.post(subs, json={"name": "hook", "push_endpoint": endpoint})
    _status(resp, 400)
    assert "--push-allow" in resp.json()["detail"]
    assert http.get("/v1/subscriptions", params={"topic": queue}).json() == {
        "subscriptions": []
    }


def test_push_allow_lets_a_subscription_name_loopback(tmp_path: Path) -> None:
    srv = start_server(tmp_path, extra=("--push-allow", "127.0.0.0/8"))
    try:
        with srv.client() as http:
            hook = {"name": "hook", "push_endpoint": "http://127.0.0.1:9/hook"}
            _status(http.post("/v1/topics/t/subscriptions", json=hook), 201)
            meta = {"name": "meta", "push_endpoint": "http://169.254.169.254/"}
            _status(http.post("/v1/topics/t/subscriptions", json=meta), 400)
    finally:
        stop_server(srv)


def test_dashboard_forms_apply_the_token_patterns_and_origin(secured: Server) -> None:
    suffix = uuid.uuid4().hex[:8]
    covered, other = f"orders.{suffix}", f"billing.{suffix}"
    with _signed_in(secured, OPS) as browser:
        origin = {"origin": secured.base}
        _status(browser.get(f"/ui/topics/{covered}"), 200)
        _status(browser.get(f"/ui/topics/{other}"), 403)
        body = {"body": '{"n": 1}'}
        _status(
            browser.post(f"/ui/topics/{other}/publish", data=body, headers=origin), 403
        )
        _status(
            browser.post(f"/ui/queues/{other}/send", data=body, headers=origin), 403
        )
        create = {"name": "x"}
        path = f"/ui/topics/{other}/subscriptions"
        _status(browser.post(path, data=create, headers=origin), 403)
        foreign = {"origin": "https://evil.example"}
        sent = browser.post(f"/ui/queues/{covered}/send", data=body, headers=foreign)
        _status(sent, 403)
        _status(
            browser.post(f"/ui/queues/{covered}/send", data=body, headers=origin), 303
        )
    with secured.client(ADMIN) as admin:
        assert admin.get(f"/v1/queues/{covered}").json()["ready"] == 1
        assert admin.get(f"/v1/queues/{other}").status_code == 404
        topics = admin.get("/v1/topics").json()["topics"]
        assert all(t["topic"] != other for t in topics)  # nothing published
