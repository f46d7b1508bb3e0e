"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1 for tests.

It implements the endpoints the real ``huggingface_hub`` client uses to create a model repo, commit files inline
("regular" upload mode), read repo info and trees, create branches, validate card YAML and resolve files, with the
headers (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and error codes (``X-Error-Code``) of the real Hub.
Repos live in memory; every commit gets a fresh sha, so old revisions stay readable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

EMPTY: dict[str, bytes] = {}


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


class FakeHub:
    """Start with ``FakeHub().start()``; ``url`` is the endpoint; ``stop()`` shuts it down."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.user_agents: list[str] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- state ---------------------------------------------------------------------------------------------------
    def new_sha(self, payload: bytes) -> str:
        with self._lock:
            self._counter += 1
            return hashlib.sha1(payload + str(self._counter).encode()).hexdigest()

    def commit(self, repo_id: str, revision: str, ops: list[dict[str, Any]]) -> str:
        repo = self.repos[repo_id]
        parent = repo.resolve(revision)
        files = dict(repo.commits[parent]) if parent else {}
        for op in ops:
            if op["key"] == "file":
                value = op["value"]
                content = value["content"]
                files[value["path"]] = (
                    base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                )
            elif op["key"] == "deletedFile":
                files.pop(op["value"]["path"], None)
            elif op["key"] == "deletedFolder":
                prefix = op["value"]["path"].rstrip("/") + "/"
                files = {k: v for k, v in files.items() if not k.startswith(prefix)}
            elif op["key"] != "header":
                raise ValueError(f"unsupported commit operation {op['key']!r}")
        sha = self.new_sha(json.dumps(sorted(files)).encode())
        repo.commits[sha] = files
        repo.refs[revision] = sha
        return sha


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>.+)$"), "preupload"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>.+)$"), "commit"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<branch>.+)$"), "create_branch"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>.+)$"), "model_info"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)$"), "model_info"),
    ("GET", re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        self.fake.requests.append((method, path))
        self.fake.user_agents.append(self.headers.get("User-Agent") or "")
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        for route_method, pattern, name in ROUTES:
            match = pattern.match(path)
            if route_method == method and match:
                params = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                getattr(self, name)(method=method, **params)
                return
        self._send(404, {"error": f"no route for {method} {path}"})

    def _send(
        self,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        head: bool = False,
    ) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
        return repo

    def _files_at(self, repo_id: str, revision: str, head: bool = False) -> tuple[str, dict[str, bytes]] | None:
        """(commit sha, files) of a repo at a revision, or None after answering RepoNotFound / RevisionNotFound."""
        repo = self._repo(repo_id, head=head)
        if repo is None:
            return None
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return None
        return sha, repo.commits[sha]

    # -- endpoints -----------------------------------------------------------------------------------------------
    def create_repo(self, method: str) -> None:
        body = json.loads(self.body or b"{}")
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else f"user/{body['name']}"
        url = f"{self.fake.url}/{repo_id}"
        if repo_id in self.fake.repos:
            self._send(409, {"error": "You already created this model repo", "url": url})
            return
        repo = Repo()
        sha = self.fake.new_sha(repo_id.encode())
        repo.commits[sha] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        repo.refs["main"] = sha
        self.fake.repos[repo_id] = repo
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, method: str) -> None:
        body = json.loads(self.body or b"{}")
        match = re.match(r"^---\n(.*?)\n---", body.get("content", ""), flags=re.DOTALL)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as err:
            self._send(400, raw=f"invalid YAML: {err}".encode())
            return
        if not isinstance(meta, dict):
            self._send(400, raw=b"metadata must be a YAML mapping")
            return
        self._send(200, {"errors": [], "warnings": []})

    def preupload(self, method: str, repo: str, rev: str) -> None:
        if self._repo(repo) is None:
            return
        files = json.loads(self.body)["files"]
        self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})

    def commit(self, method: str, repo: str, rev: str) -> None:
        state = self._repo(repo)
        if state is None:
            return
        if rev not in state.refs:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev} (commits go to a branch)")
            return
        ops = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        sha = self.fake.commit(repo, rev, ops)
        self._send(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.fake.url}/{repo}/commit/{sha}",
                "pullRequestUrl": None,
            },
        )

    def create_branch(self, method: str, repo: str, branch: str) -> None:
        state = self._repo(repo)
        if state is None:
            return
        body = json.loads(self.body or b"{}")
        start = state.resolve(body.get("startingPoint") or "main")
        if branch in state.refs:
            self._send(409, {"error": f"Branch {branch} already exists"})
            return
        if start is None:
            self._error(404, "RevisionNotFound", "Invalid starting point")
            return
        state.refs[branch] = start
        self._send(200, {})

    def model_info(self, method: str, repo: str, rev: str = "main") -> None:
        found = self._files_at(repo, rev)
        if found is None:
            return
        sha, files = found
        self._send(
            200,
            {
                "id": repo,
                "modelId": repo,
                "sha": sha,
                "private": False,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": "dcicnn",
                "lastModified": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "siblings": [{"rfilename": name} for name in sorted(files)],
            },
        )

    def tree(self, method: str, repo: str, rev: str, path: str | None = None) -> None:
        found = self._files_at(repo, rev)
        if found is None:
            return
        _, files = found
        prefix = (path or "").strip("/")
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha(data)}
            for name, data in sorted(files.items())
            if not prefix or name.startswith(prefix + "/")
        ]
        self._send(200, entries)

    def resolve(self, method: str, repo: str, rev: str, path: str) -> None:
        head = method == "HEAD"
        found = self._files_at(repo, rev, head=head)
        if found is None:
            return
        sha, files = found
        if path not in files:
            self._error(404, "EntryNotFound", f"{path} does not exist at {rev}", head=head)
            return
        data = files[path]
        etag = git_blob_sha(data)
        self._send(
            200,
            raw=data,
            head=head,
            headers={
                "X-Repo-Commit": sha,
                "ETag": f'"{etag}"',
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
            },
        )
