"""A stand-in Hugging Face hub on the loopback interface, for tests.

It answers the routes that huggingface_hub (2.x; the same routes in 0.2x) calls for what this project does:

* ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` (``hf_hub_download``): ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` headers, the bytes on GET; 404 with ``X-Error-Code`` ``RepoNotFound`` /
  ``RevisionNotFound`` / ``EntryNotFound`` as the hub does (``EntryNotFound`` carries ``X-Repo-Commit``);
* ``GET /api/models/{repo}/tree/{revision}?recursive=...`` (``list_repo_files`` / ``list_repo_tree``, and
  ``snapshot_download``'s listing): a JSON list of ``{"type": "file", "path", "size", "oid"}`` (LFS files also
  ``"lfs": {"oid", "size", "pointerSize"}``), no ``Link`` header (one page);
* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}`` (``repo_info``, used by
  ``snapshot_download`` to resolve a branch to a commit): ``{"id", "sha", "siblings": [{"rfilename"}]}``.

Each repo has one commit; ``main`` and that commit's id resolve to it. Every request is recorded in
``requests`` as ``(method, path)`` so tests can assert what was (not) fetched.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".pth.tar", ".safetensors", ".bin", ".pt")
SPEECH_REPO = "microsoft/wavlm-large"
TEXT_REPO = "ibm-granite/granite-embedding-278m-multilingual"


def set_offline(monkeypatch, offline: bool) -> None:
    """HF_HUB_OFFLINE as the environment and as huggingface_hub (which read it at import) see it."""
    import huggingface_hub.constants as constants

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


def use_cache(monkeypatch, home) -> None:
    """HF_HOME / HF_HUB_CACHE under ``home`` (environment and huggingface_hub's constants)."""
    import huggingface_hub.constants as constants

    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.tree_api = True  # False: the listing API answers 404 (a mirror that serves files only)
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ set-up
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path], commit: str | None = None) -> str:
        data = {name: (Path(v).read_bytes() if isinstance(v, (str, Path)) else v) for name, v in files.items()}
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(data):
            digest.update(name.encode() + b"\0" + data[name])
        commit = commit or digest.hexdigest()
        self.repos[repo_id] = Repo(commit, data)
        return commit

    def start(self) -> "StandInHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def fetched(self, name: str) -> list[tuple[str, str]]:
        """Requests whose path ends with ``/name`` (HEAD and GET)."""
        return [r for r in self.requests if r[1].endswith("/" + name)]

    # ------------------------------------------------------------------ routing
    def _find(self, parts: list[str]) -> tuple[str | None, list[str]]:
        """The repo id at the start of ``parts`` (``owner/name``) and the rest."""
        if len(parts) >= 2 and "/".join(parts[:2]) in self.repos:
            return "/".join(parts[:2]), parts[2:]
        return None, parts[2:]

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        with self._lock:
            self.requests.append((handler.command, path))
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"]:
            repo_id, rest = self._find(parts[2:])
            if repo_id is None:
                return self._error(handler, "RepoNotFound", body)
            repo = self.repos[repo_id]
            if rest and rest[0] == "tree" and not self.tree_api:
                return self._error(handler, "", body)
            if rest and rest[0] in ("revision", "tree"):
                if len(rest) < 2 or rest[1] not in ("main", repo.commit):
                    return self._error(handler, "RevisionNotFound", body)
                if rest[0] == "tree":
                    return self._json(handler, [self._entry(name, data) for name, data in sorted(repo.files.items())],
                                      body)
            elif rest:
                return self._error(handler, "EntryNotFound", body)
            return self._json(handler, {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                                        "siblings": [{"rfilename": name} for name in sorted(repo.files)]}, body)
        repo_id, rest = self._find(parts)
        if repo_id is None:
            return self._error(handler, "RepoNotFound", body)
        repo = self.repos[repo_id]
        if len(rest) < 3 or rest[0] != "resolve":
            return self._error(handler, "EntryNotFound", body)
        if rest[1] not in ("main", repo.commit):
            return self._error(handler, "RevisionNotFound", body)
        name = "/".join(rest[2:])
        if name not in repo.files:
            return self._error(handler, "EntryNotFound", body, commit=repo.commit)
        data = repo.files[name]
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else hashlib.sha1(data).hexdigest()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", f'"{etag}"')
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    @staticmethod
    def _entry(name: str, data: bytes) -> dict:
        entry = {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, payload, body: bool) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    @staticmethod
    def _error(handler: BaseHTTPRequestHandler, code: str, body: bool, commit: str | None = None) -> None:
        data = json.dumps({"error": code}).encode()
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if code:
            handler.send_header("X-Error-Code", code)
            handler.send_header("X-Error-Message", code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.end_headers()
        if body:
            handler.wfile.write(data)
