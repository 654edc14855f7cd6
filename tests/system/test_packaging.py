"""The server as `pip install .` (not editable) installs it, as the Docker image does: its wheel carries the
migrations, the dashboard's templates and static files, and the installed copy migrates a database and serves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.support import REPO, free_port


def test_the_wheel_migrates_a_database_and_serves(tmp_path: Path) -> None:
    source = tmp_path / "source"  # what the Dockerfile copies before its `pip install /app`
    for name in ("service", "migrations"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("asktell_server-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "service").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    migrations = {
        f"service/{p.relative_to(REPO).as_posix()}"
        for p in (REPO / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert not (sources | migrations) - shipped  # every module, template, static file and migration

    installed = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(installed), str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    # The installed copy, not the checkout: run outside the repository, with the copy first on the path.
    env = {**os.environ, "PYTHONPATH": str(installed), "OMP_WAIT_POLICY": "PASSIVE"}
    database = f"sqlite:///{tmp_path / 'wheel.db'}"
    where = subprocess.run(
        [sys.executable, "-c", "import service; print(service.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed)), where
    subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade", "--database-url", database],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--database-url", database],
        env={**env, "ASKTELL_EMBEDDED_WORKER": "off"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0]
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/ui").status_code == 200
        assert httpx.get(f"{url}/ui/static/app.js").status_code == 200
    finally:
        server.terminate()
        server.communicate(timeout=60)
