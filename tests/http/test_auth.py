"""Access control through a real server: tokens, scopes, queue patterns."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from .conftest import (
    ADMIN,
    CLI,
    OPS,
    RECEIVER,
    SENDER,
    Server,
    start_server,
    stop_server,
)


def _status(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["status"] == status


def test_missing_and_wrong_tokens_are_401(secured: Server) -> None:
    with secured.client() as anon, secured.client("wrong-token-0123456789abc") as bad:
        for c in (anon, bad):
            _status(c.get("/v1/queues"), 401)
            _status(c.post("/v1/queues/orders.x/messages", json={"body": 1}), 401)
            _status(c.get("/v1/topics"), 401)
            _status(c.get("/metrics"), 401)
    resp = httpx.get(secured.base + "/v1/queues", headers={"authorization": "Basic x"})
    _status(resp, 401)


def test_health_and_openapi_need_no_token(secured: Server) -> None:
    with secured.client() as anon:
        assert anon.get("/healthz").status_code == 200
        doc = anon.get("/openapi.json").json()
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_scopes_are_enforced(secured: Server, queue: str) -> None:
    name = f"orders.{queue}"
    with secured.client(SENDER) as sender, secured.client(RECEIVER) as receiver:
        assert (
            sender.post(f"/v1/queues/{name}/messages", json={"body": 1}).status_code
            == 201
        )
        _status(sender.post(f"/v1/queues/{name}/receive", json={}), 403)
        _status(receiver.post(f"/v1/queues/{name}/messages", json={"body": 1}), 403)
        [m] = receiver.post(f"/v1/queues/{name}/receive", json={}).json()["messages"]
        _status(
            sender.post(f"/v1/queues/{name}/ack", json={"receipt": m["receipt"]}), 403
        )
        _status(receiver.get(f"/v1/queues/{name}/dead-letters"), 403)
        _status(receiver.delete(f"/v1/queues/{name}/messages"), 403)
        _status(
            sender.post("/v1/topics/orders.t/subscriptions", json={"name": "s"}), 403
        )
        ok = receiver.post(f"/v1/queues/{name}/ack", json={"receipt": m["receipt"]})
        assert ok.status_code == 200
        assert sender.get(f"/v1/queues/{name}").status_code == 200  # any scope reads


def test_queue_patterns_are_enforced(secured: Server, queue: str) -> None:
    with secured.client(SENDER) as sender, secured.client(ADMIN) as admin:
        _status(sender.post(f"/v1/queues/{queue}/messages", json={"body": 1}), 403)
        _status(sender.get(f"/v1/queues/{queue}"), 403)
        _status(sender.post(f"/v1/topics/{queue}/publish", json={"body": 1}), 403)
        assert (
            admin.post(f"/v1/queues/{queue}/messages", json={"body": 1}).status_code
            == 201
        )
        sender.post(f"/v1/queues/orders.{queue}/messages", json={"body": 1})
        visible = [q["queue"] for q in sender.get("/v1/queues").json()["queues"]]
        assert f"orders.{queue}" in visible
        assert queue not in visible
        everything = [q["queue"] for q in admin.get("/v1/queues").json()["queues"]]
        assert {queue, f"orders.{queue}"} <= set(everything)


def test_redrive_target_must_be_covered(secured: Server, queue: str) -> None:
    name = f"orders.{queue}"
    with secured.client(OPS) as ops:
        ops.post(f"/v1/queues/{name}/messages", json={"body": 1})
        redrive = f"/v1/queues/{name}/dead-letters:redrive"
        _status(ops.post(redrive, json={"all": True, "to": "payments"}), 403)
        to_retry = {"all": True, "to": f"{name}.retry"}
        assert ops.post(redrive, json=to_retry).status_code == 200
        _status(ops.get(f"/v1/queues/{queue}/dead-letters"), 403)


def test_metrics_need_a_token(secured: Server) -> None:
    with secured.client(SENDER) as sender:
        assert "postroom_queue_depth" in sender.get("/metrics").text


def test_dashboard_needs_admin_sign_in(secured: Server) -> None:
    with secured.client() as anon:
        resp = anon.get("/", follow_redirects=False)
        assert (resp.status_code, resp.headers["location"]) == (303, "/ui/login")
        _status(anon.get("/ui/overview.json"), 401)
        assert anon.post("/ui/login", data={"token": SENDER}).status_code == 401
        login = anon.post("/ui/login", data={"token": ADMIN}, follow_redirects=False)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert anon.get("/ui/overview.json").status_code == 200
        forged = anon.post(
            "/ui/queues/x/purge", data={"dead": "1"}, headers={"origin": "http://evil"}
        )
        _status(forged, 403)
    with secured.client(RECEIVER) as receiver:
        assert receiver.get("/", follow_redirects=False).status_code == 303


def test_serve_refuses_public_bind_without_tokens() -> None:
    proc = subprocess.run(
        [*CLI, "serve", "--url", "memory://",
         "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "refusing to listen on '0.0.0.0' without access tokens" in proc.stderr


def test_tokens_file_and_env_are_combined(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        '[[tokens]]\nname = "billing"\ntoken = "billing-token-0123456789"\n'
        'scopes = ["send"]\nqueues = ["billing.*"]\n'
    )
    srv = start_server(
        tmp_path, tokens=f"{ADMIN}:admin", extra=("--tokens-file", str(tokens))
    )
    try:
        with (
            srv.client("billing-token-0123456789") as billing,
            srv.client(ADMIN) as admin,
        ):
            ok = billing.post("/v1/queues/billing.eu/messages", json={"body": 1})
            assert ok.status_code == 201
            _status(billing.post("/v1/queues/other/messages", json={"body": 1}), 403)
            assert admin.get("/v1/queues/billing.eu").json()["ready"] == 1
    finally:
        stop_server(srv)
