"""Authentication, roles and namespaces against a real server on its own PostgreSQL database.

A database with a token has authentication on for good, so these tests never share the session's servers.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from asktell import AuthenticationError, Client, NotFoundError
from service.app import create_app
from service.config import Settings
from tests.support import REPO, RunningServer, ServerFactory, free_port, make_spec

ADMIN_SECRET = "at_bootstrap-" + secrets.token_hex(16)
DB_PASSWORD = "pw-" + secrets.token_hex(8)  # PostgreSQL trusts local connections: any password works


@pytest.fixture(scope="module")
def secured(module_servers: ServerFactory) -> RunningServer:
    return module_servers(
        extra_env={"ASKTELL_ADMIN_TOKEN": ADMIN_SECRET, "ASKTELL_AUTH_CACHE_SECONDS": "0"},
        database_password=DB_PASSWORD,
    )


def _client(server: RunningServer, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def teams(secured: RunningServer) -> dict[str, Any]:
    """Namespaces team-a and team-b, a token of each role in team-a, a writer in team-b, a study in team-a."""
    with _client(secured, ADMIN_SECRET) as admin:
        for name in ("team-a", "team-b"):
            assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
        tokens = {
            role: admin.post("/v1/tokens", json={"namespace": "team-a", "role": role, "name": role}).json()
            for role in ("reader", "writer", "admin")
        }
        other = admin.post("/v1/tokens", json={"namespace": "team-b", "role": "writer"}).json()
    with _client(secured, tokens["writer"]["secret"]) as writer:
        created = writer.post("/v1/studies", json={"name": "secret-study", **make_spec(engine="random")})
        assert created.status_code == 201, created.text
        trial = writer.post("/v1/studies/secret-study/ask", json={"count": 1}).json()["trials"][0]
    return {
        "a": {r: t["secret"] for r, t in tokens.items()},
        "a_ids": {r: t["id"] for r, t in tokens.items()},
        "b": other["secret"],
        "study": "secret-study",
        "trial": trial["number"],
    }


def test_requests_without_a_valid_token_are_refused(secured: RunningServer, teams: dict[str, Any]) -> None:
    bogus = "at_" + secrets.token_urlsafe(32)
    for token in (None, bogus):
        with _client(secured, token) as anyone:
            response = anyone.get("/v1/studies")
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthenticated"
            assert response.headers["www-authenticate"] == "Bearer"
            assert bogus not in response.text
    with httpx.Client(base_url=secured.url, headers={"Authorization": "Basic abc"}) as basic:
        assert basic.get("/v1/studies").status_code == 401
    assert httpx.get(f"{secured.url}/healthz").status_code == 200  # probes need no token
    assert httpx.get(f"{secured.url}/readyz").status_code == 200


def test_roles_decide_what_a_token_may_do(secured: RunningServer, teams: dict[str, Any]) -> None:
    study = teams["study"]
    with _client(secured, teams["a"]["reader"]) as reader:
        assert reader.get(f"/v1/studies/{study}").status_code == 200
        assert reader.get(f"/v1/studies/{study}/trials").status_code == 200
        denied = reader.post(f"/v1/studies/{study}/ask", json={})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
        assert reader.delete(f"/v1/studies/{study}").status_code == 403
    with _client(secured, teams["a"]["writer"]) as writer:
        assert writer.post("/v1/tokens", json={"namespace": "team-a"}).status_code == 403
        assert writer.get("/v1/namespaces").status_code == 403
        number = teams["trial"]
        assert (
            writer.post(
                f"/v1/studies/{study}/trials/{number}/report", json={"step": 1, "values": {"loss": 0.5}}
            ).status_code
            == 200
        )
    with _client(secured, teams["a"]["admin"]) as admin:
        listed = admin.get("/v1/tokens", params={"namespace": "team-a"}).json()["tokens"]
        assert {t["role"] for t in listed} == {"reader", "writer", "admin"}
        assert all("secret" not in t for t in listed)


def test_a_revoked_token_stops_working(secured: RunningServer, teams: dict[str, Any]) -> None:
    with _client(secured, ADMIN_SECRET) as admin:
        token = admin.post("/v1/tokens", json={"namespace": "team-a", "role": "reader"}).json()
        with _client(secured, token["secret"]) as reader:
            assert reader.get("/v1/studies").status_code == 200
            revoked = admin.delete(f"/v1/tokens/{token['id']}").json()
            assert revoked["revoked_at"] is not None
            assert reader.get("/v1/studies").status_code == 401


def _sample(route: APIRoute, method: str, teams: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A request on `route` aimed at team-a's study, trial and token, with a body the route accepts."""
    values = {
        "study": teams["study"],
        "name": teams["study"],
        "number": teams["trial"],
        "job_id": 1,
        "token_id": teams["a_ids"]["reader"],
        "namespace": "team-a",
    }
    path = re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), route.path)
    bodies = {
        "ask": {"count": 1},
        "report": {"step": 2, "values": {"loss": 1.0}},
        "tell": {"values": {"loss": 1.0}},
        "trials": {"params": {"lr": 0.01, "layers": 2, "act": "relu"}},
        "state": {"state": "paused"},
        "tokens": {"namespace": "team-a", "role": "admin"},
        "namespaces": {"name": "team-c"},
    }
    body = bodies.get(route.path.rstrip("/").rsplit("/", 1)[-1]) if method in ("POST", "PUT") else None
    return path, body


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside routers FastAPI keeps as included-router wrappers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def test_another_namespace_sees_and_touches_nothing(secured: RunningServer, teams: dict[str, Any]) -> None:
    """Every route of the app, with team-b's writer token: team-a's study is not found, never forbidden, and no
    answer mentions it. Generated from the route table, so a new route cannot skip the check."""
    app = create_app(Settings(database_url="sqlite://", migrate_on_start=False))
    routes = list(_api_routes(app.routes))
    checked = 0
    with _client(secured, teams["b"]) as outsider:
        for route in routes:
            for method in sorted(route.methods):
                path, body = _sample(route, method, teams)
                response = outsider.request(method, path, json=body)
                scoped = "{study}" in route.path or "{name}" in route.path
                if scoped:
                    assert response.status_code in (404, 303), (method, path, response.status_code, response.text)
                    if response.status_code == 303:  # the dashboard signs in with a cookie, never with a header
                        assert response.headers["location"].endswith("/ui/sign-in")
                elif route.path.startswith(("/v1/tokens", "/v1/namespaces")):
                    assert response.status_code == 403, (method, path, response.text)
                seen = response.text
                if response.status_code == 404:  # the message repeats the name the caller sent, nothing more
                    seen = seen.replace(response.json()["error"]["message"], "")
                assert teams["study"] not in seen, (method, path, response.text)
                checked += 1
    assert checked >= 20
    with _client(secured, teams["a"]["reader"]) as insider:  # the study is intact
        study = insider.get(f"/v1/studies/{teams['study']}").json()
        assert study["state"] == "active" and study["trial_counts"]["active"] == 1
        assert insider.get(f"/v1/studies/{teams['study']}/trials/{teams['trial']}").json()["values"] is None


def test_studies_with_one_name_live_apart_in_two_namespaces(secured: RunningServer, teams: dict[str, Any]) -> None:
    with Client(secured.url, token=teams["b"]) as other:
        study = other.create_study(teams["study"], **_sdk_spec())
        assert study.to_dict()["owner"] == "team-b"
        assert [s.name for s in other.list_studies()] == [teams["study"]]
        study.ask()
    with Client(secured.url, token=teams["a"]["reader"]) as reader:
        assert reader.get_study(teams["study"]).trial_counts == {"active": 1}
        with pytest.raises(AuthenticationError):
            reader.create_study("not-allowed", **_sdk_spec())
    with Client(secured.url, token=teams["b"]) as other:
        other.delete_study(teams["study"])
        with pytest.raises(NotFoundError):
            other.get_study(teams["study"])


def _sdk_spec() -> dict[str, Any]:
    spec = make_spec(engine="random")
    return {"params": spec["params"], "objectives": spec["objectives"], "engine": "random"}


def test_namespaces_are_managed_by_admins(secured: RunningServer, teams: dict[str, Any]) -> None:
    with Client(secured.url, token=ADMIN_SECRET) as admin:
        admin.create_namespace("short-lived")
        token = admin.create_token("short-lived", "writer", "ci")
        assert token["secret"].startswith("at_") and token["prefix"] == token["secret"][:10]
        names = {n["name"]: n for n in admin.list_namespaces()}
        assert names["short-lived"]["tokens"] == 1 and names["team-a"]["studies"] == 1
        admin.delete_namespace("short-lived")
        assert "short-lived" not in {n["name"] for n in admin.list_namespaces()}
        assert [t["revoked_at"] is not None for t in admin.list_tokens("short-lived")] == [True]
    with _client(secured, ADMIN_SECRET) as admin:
        assert admin.delete("/v1/namespaces/team-a").status_code == 409  # still holds a study
        assert admin.delete("/v1/namespaces/default").status_code == 409
        bad = admin.post("/v1/namespaces", json={"name": "Bad Name"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "name"


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _form_token(browser: httpx.Client) -> str:
    """Open the sign-in page as a browser would: it sets a cookie and carries the same token in its form."""
    page = browser.get("/ui/sign-in")
    match = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_the_dashboard_signs_in_with_a_cookie(secured: RunningServer, teams: dict[str, Any]) -> None:
    with httpx.Client(base_url=secured.url, follow_redirects=False) as browser:
        assert browser.get("/ui").headers["location"] == "/ui/sign-in"
        assert (
            browser.post(
                "/ui/sign-in", content=f"token=wrong&form_token={_form_token(browser)}", headers=FORM
            ).status_code
            == 401
        )
        signed = browser.post(
            "/ui/sign-in", content=f"token={teams['a']['reader']}&form_token={_form_token(browser)}", headers=FORM
        )
        assert signed.status_code == 303
        page = browser.get("/ui")
        assert page.status_code == 200 and teams["study"] in page.text
        # The cookie is for reading pages only: it does not authorize API writes.
        assert browser.post(f"/v1/studies/{teams['study']}/ask", json={}).status_code == 401


def test_a_cross_site_sign_in_is_refused(secured: RunningServer, teams: dict[str, Any]) -> None:
    """Login CSRF: another site's page posting its own token to the sign-in form would sign the victim's browser
    in to the attacker's namespace. Without the form's token (its cookie is SameSite=Strict), or when the browser
    says the post comes from another site, the sign-in is refused and sets no cookie."""
    reader = teams["a"]["reader"]
    with httpx.Client(base_url=secured.url, follow_redirects=False) as browser:
        forged = [
            (f"token={reader}", {}),  # no form token: a form on another site
            (f"token={reader}&form_token=guessed", {}),
            (f"token={reader}&form_token={_form_token(browser)}", {"Sec-Fetch-Site": "cross-site"}),
        ]
        for body, headers in forged:
            refused = browser.post("/ui/sign-in", content=body, headers={**FORM, **headers})
            assert refused.status_code == 403 and "another site" in refused.text, refused.text
            assert "asktell_token" not in refused.headers.get("set-cookie", "")
        assert browser.get("/ui").status_code == 303  # still signed out


def test_dashboard_pages_cannot_be_framed_or_load_foreign_code(secured: RunningServer) -> None:
    page = httpx.get(f"{secured.url}/ui/sign-in")
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy and "form-action 'self'" in policy


def test_limits_cors_and_no_secret_in_logs(secured: RunningServer, teams: dict[str, Any]) -> None:
    with _client(secured, teams["a"]["writer"]) as writer:
        huge = writer.post(
            "/v1/studies", content=b"{" + b" " * (5 * 1024 * 1024) + b"}", headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        long_metric = writer.post(
            f"/v1/studies/{teams['study']}/trials/{teams['trial']}/report", json={"step": 3, "values": {"x" * 200: 1.0}}
        )
        assert long_metric.status_code == 422 and long_metric.json()["error"]["details"][0]["field"].startswith(
            "values"
        )
        preflight = writer.options(
            "/v1/studies", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers
    log = secured.output() + Path(secured.log).read_text(errors="replace")
    for secret in (ADMIN_SECRET, DB_PASSWORD, teams["b"], *teams["a"].values()):
        assert secret not in log


def _serve(args: list[str], database_url: str) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--database-url", database_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )


def test_an_open_server_refuses_a_public_address_unless_insecure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'open.db'}"
    refused = _serve(["--host", "0.0.0.0", "--port", str(free_port())], url)
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "refusing to serve 0.0.0.0 without authentication" in output
    port = free_port()
    insecure = _serve(["--host", "0.0.0.0", "--port", str(port), "--insecure"], url)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", insecure)
    finally:
        insecure.terminate()
        output, _ = insecure.communicate(timeout=60)
    assert "AUTHENTICATION IS OFF" in output


def test_the_first_admin_token_comes_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'boot.db'}"
    created = subprocess.run(
        [sys.executable, "-m", "service.cli", "tokens", "create", "--admin", "--name", "ops", "--database-url", url],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    secret = created.stdout.strip()
    assert secret.startswith("at_") and "shown only this once" in created.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "service.cli", "tokens", "list", "--database-url", url],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert "admin" in listed and secret not in listed and secret[:10] in listed
    port = free_port()
    server = _serve(["--host", "0.0.0.0", "--port", str(port)], url)  # authentication is configured now
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/studies").status_code == 401
        with Client(f"http://127.0.0.1:{port}", token=secret) as admin:
            assert admin.list_studies() == []
    finally:
        server.terminate()
        server.communicate(timeout=60)


def _wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready")


def _create_studies_until_refused(
    server: RunningServer,
    secret: str,
    start: threading.Barrier,
    head_start: float,
    writer_index: int,
    created: list[str],
) -> None:
    with _client(server, secret) as writer:
        start.wait()
        time.sleep(head_start)
        for i in range(50):
            name = f"s-{writer_index}-{i}"
            response = writer.post("/v1/studies", json={"name": name, **make_spec(engine="random")})
            if response.status_code != 201:
                assert response.status_code in (401, 409), response.text
                return
            created.append(name)


def test_deleting_a_namespace_while_its_writers_create_studies_leaves_no_study_behind(
    secured: RunningServer, teams: dict[str, Any]
) -> None:
    """Writers create studies as fast as they can while an admin deletes their namespace. Either the delete is
    refused (a study got in first) or it wins and not one study of the namespace survives: after re-creating
    the namespace, a new token sees nothing of the old one."""
    for attempt in range(8):
        namespace = f"racing-{attempt}"
        head_start = attempt * 0.002  # the delete's head start: from none to past the writers' first studies
        with _client(secured, ADMIN_SECRET) as admin:
            assert admin.post("/v1/namespaces", json={"name": namespace}).status_code == 201
            secret = admin.post("/v1/tokens", json={"namespace": namespace, "role": "writer"}).json()["secret"]
        start = threading.Barrier(5)
        created: list[str] = []
        writers = [
            threading.Thread(
                target=_create_studies_until_refused, args=(secured, secret, start, head_start, i, created)
            )
            for i in range(4)
        ]
        for thread in writers:
            thread.start()
        with _client(secured, ADMIN_SECRET) as admin:
            start.wait()
            deleted = admin.delete(f"/v1/namespaces/{namespace}")
            for thread in writers:
                thread.join()
            assert deleted.status_code in (204, 409), deleted.text
            listed = {n["name"]: n for n in admin.get("/v1/namespaces").json()["namespaces"]}
            if deleted.status_code == 409:  # a study got in first: the namespace stays, with what it holds
                assert listed[namespace]["studies"] == len(created)
                continue
            assert namespace not in listed
            assert admin.post("/v1/namespaces", json={"name": namespace}).status_code == 201
            fresh = admin.post("/v1/tokens", json={"namespace": namespace, "role": "reader"}).json()["secret"]
        with _client(secured, fresh) as reader:
            assert reader.get("/v1/studies").json()["studies"] == [], f"attempt {attempt}: {len(created)} created"
