"""A loopback HTTP server that imitates the Hugging Face hub endpoints huggingface_hub uses
for a model download, serving repositories a test writes into folders.

- ``GET /api/models/<owner>/<name>[/revision/<rev>]``: the model info JSON (``id``,
  ``sha``, ``siblings`` with ``rfilename`` and ``size``); an unknown repository answers 404
  with ``X-Error-Code: RepoNotFound``, as the hub does;
- ``GET|HEAD /<owner>/<name>/resolve/<rev>/<path>``: the file, with ``ETag``,
  ``X-Repo-Commit``, ``Content-Length`` and ``Accept-Ranges``; a ``Range: bytes=N-``
  request gets ``206`` and the rest of the file.

``interrupt[name] = n`` makes the next ``n`` requests for that file send the full
``Content-Length`` but only half the body and close the connection (a server
interruption). ``log`` lists (method, path, range) of every request. Bound to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "c0ffee" * 6 + "abcd"


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Path] = {}
        self.interrupt: dict[str, int] = {}
        self.log: list[tuple[str, str, str]] = []
        self.chunk = 1 << 14
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                return

            def do_HEAD(self) -> None:  # noqa: N802
                hub._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo_id: str, folder: Path) -> None:
        self.repos[repo_id] = Path(folder)

    def requested(self, suffix: str) -> list[tuple[str, str, str]]:
        return [entry for entry in self.log if entry[1].endswith(suffix)]

    # -- request handling ------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        with self._lock:
            self.log.append((handler.command, path, handler.headers.get("Range", "")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo_id = "/".join(parts[2:4])
            self._info(handler, repo_id, body)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._file(handler, "/".join(parts[:2]), "/".join(parts[4:]), body)
        else:
            self._error(handler, 404, "EntryNotFound")

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str) -> None:
        data = json.dumps({"error": code}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _info(self, handler: BaseHTTPRequestHandler, repo_id: str, body: bool) -> None:
        folder = self.repos.get(repo_id)
        if folder is None:
            self._error(handler, 404, "RepoNotFound")
            return
        siblings = [{"rfilename": p.relative_to(folder).as_posix(), "size": p.stat().st_size}
                    for p in sorted(folder.rglob("*")) if p.is_file()]
        data = json.dumps({"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
                           "siblings": siblings}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def _file(self, handler: BaseHTTPRequestHandler, repo_id: str, name: str, body: bool) -> None:
        folder = self.repos.get(repo_id)
        target = folder / name if folder is not None else None
        if target is None or not target.is_file():
            self._error(handler, 404, "RepoNotFound" if folder is None else "EntryNotFound")
            return
        data = target.read_bytes()
        start = 0
        requested = handler.headers.get("Range", "")
        if requested.startswith("bytes=") and requested.endswith("-"):
            start = int(requested[len("bytes="):-1])
        payload = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(payload)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        with self._lock:
            cut = self.interrupt.get(name, 0) > 0
            if cut:
                self.interrupt[name] -= 1
        if cut:
            payload = payload[: max(1, len(payload) // 2)]
        try:
            for offset in range(0, len(payload), self.chunk):
                handler.wfile.write(payload[offset: offset + self.chunk])
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut:
            handler.close_connection = True
