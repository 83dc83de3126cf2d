"""Pulumi mocks shaped like Google Cloud, ``build`` (the ``mayfly:gcp:Target`` component under them), and
``local_registry``: a Docker registry on 127.0.0.1 that the real Docker engine pushes to.

``GcpMocks`` answers each resource with its inputs plus the names Google would give it
(topic and subscription ids, service account emails, an auto-named bucket) and the one
invoke the component makes (the project's number); it records every resource. Tests
assert on the recorded inputs (camelCase keys, numbers as floats, as the mocks get them),
never on values the mocks invent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_gcp

    # pulumi_gcp loads its submodules lazily, on first attribute access (importing some of them warns about
    # deprecated functions): load the ones the component uses now, with the warnings off.
    for _module, _name in (
        ("artifactregistry", "Repository"),
        ("cloudrunv2", "WorkerPool"),
        ("organizations", "get_project_output"),
        ("projects", "Service"),
        ("pubsub", "Topic"),
        ("serviceaccount", "Account"),
        ("storage", "Bucket"),
    ):
        getattr(getattr(pulumi_gcp, _module), _name)

PROJECT_ID = "my-project"
PROJECT_NUMBER = "123456789012"
REGION = "europe-west1"


def physical(name: str) -> str:
    """The auto-name Pulumi gives a resource (logical name + a random suffix)."""
    return f"{name}-1a2b3c4"


class GcpMocks(pulumi.runtime.Mocks):
    """Plausible outputs per Google Cloud resource type; every resource and invoke is recorded."""

    project = PROJECT_ID
    number = PROJECT_NUMBER
    physical = staticmethod(physical)

    def __init__(self) -> None:
        self.resources: list[MockResourceArgs] = []
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        inputs = args.inputs
        state: dict[str, Any] = dict(inputs)
        project = inputs.get("project", PROJECT_ID)
        typ = args.typ
        if typ == "gcp:pubsub/topic:Topic":
            rid = f"projects/{project}/topics/{inputs['name']}"
        elif typ == "gcp:pubsub/subscription:Subscription":
            rid = f"projects/{project}/subscriptions/{inputs['name']}"
        elif typ == "gcp:storage/bucket:Bucket":
            rid = inputs.get("name") or physical(args.name)
            state |= {"name": rid, "url": f"gs://{rid}"}
        elif typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            rid = f"projects/{project}/serviceAccounts/{email}"
            state |= {"email": email, "name": rid, "member": f"serviceAccount:{email}"}
        elif typ == "gcp:artifactregistry/repository:Repository":
            rid = f"projects/{project}/locations/{inputs['location']}/repositories/{inputs['repositoryId']}"
            state |= {"name": inputs["repositoryId"]}
        elif typ == "gcp:cloudrunv2/workerPool:WorkerPool":
            rid = f"projects/{project}/locations/{inputs['location']}/workerPools/{inputs['name']}"
        else:
            rid = f"{args.name}-id"
        return rid, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args)
        if args.token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId", PROJECT_ID)
            return {"id": f"projects/{project}", "projectId": project, "number": PROJECT_NUMBER}, []
        raise AssertionError(f"unexpected invoke {args.token}")

    # ------------------------------------------------------------ queries for tests

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Inputs of every resource of a type, by logical name."""
        return {r.name: r.inputs for r in self.resources if r.typ == typ}

    def one(self, typ: str, name: str) -> dict[str, Any]:
        found = self.of_type(typ)
        assert name in found, f"no {typ} named {name}: {sorted(found)}"
        return found[name]


class GcpMonitor(MockMonitor):
    """The mock monitor, also keeping each registration's parent URN and dependencies, and registered outputs."""

    def __init__(self, mocks: GcpMocks) -> None:
        super().__init__(mocks)
        self.parents: dict[tuple[str, str], str] = {}
        self.dependencies: dict[tuple[str, str], list[str]] = {}
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.parents[(request.type, request.name)] = request.parent
        self.dependencies[(request.type, request.name)] = list(request.dependencies)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


@dataclass
class GcpBuilt:
    """A component built under the mocks: what it registered, and its resolved settings and outputs."""

    mocks: GcpMocks
    monitor: GcpMonitor
    settings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def gcp_mocks() -> tuple[GcpMocks, GcpMonitor]:
    """Fresh recording mocks installed in the Pulumi runtime (a real deployment, not a preview)."""
    recording = GcpMocks()
    monitor = GcpMonitor(recording)
    pulumi.runtime.set_mocks(recording, project="mayfly", stack="test", preview=False, monitor=monitor)
    return recording, monitor


@pytest.fixture
def build(gcp_mocks: tuple[GcpMocks, GcpMonitor]) -> Callable[..., GcpBuilt]:
    """Build ``GcpTarget(name, args)`` under the mocks; returns once every registration has finished."""
    from mayfly.infra.clouds.gcp.component import GcpTarget, GcpTargetArgs

    def run(name: str = "dev", args: GcpTargetArgs | None = None) -> GcpBuilt:
        built = GcpBuilt(*gcp_mocks)

        @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's test helper is untyped
        def program() -> pulumi.Output[Any]:
            target = GcpTarget(name, args or GcpTargetArgs(project=PROJECT_ID, region=REGION))
            resolved = pulumi.Output.all(settings=target.settings_outputs(), outputs=target.outputs())
            return resolved.apply(lambda v: (built.settings.update(v["settings"]), built.outputs.update(v["outputs"])))

        program()
        return built

    return run


@pytest.fixture
def mocked_gcp(mocked_pulumi: Any) -> Any:
    """``mocked_pulumi`` (tests/infra/conftest.py) answering with :class:`GcpMocks`."""
    mocked_pulumi.mocks = GcpMocks
    return mocked_pulumi


# ---------------------------------------------------------------- a registry the real engine can push to


class LocalRegistry(BaseHTTPRequestHandler):
    """The push half of the Docker Registry HTTP API v2, behind Basic auth (as Artifact Registry takes a token).

    Docker treats registries on 127.0.0.0/8 as insecure (plain HTTP) by default, so the shared engine pushes here
    without any configuration. Blobs are checked against their digest; every login is recorded.
    """

    protocol_version = "HTTP/1.1"
    user = "oauth2accesstoken"
    password = ""
    logins: list[tuple[str, str]]
    blobs: dict[str, bytes]
    uploads: dict[str, bytes]
    manifests: dict[tuple[str, str], bytes]

    def _send(self, code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(code)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return data
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            self.logins.append((user, password))
            if (user, password) == (self.user, self.password):
                return True
        self._body()
        self._send(401, {"WWW-Authenticate": 'Basic realm="local"'}, b'{"errors": [{"code": "UNAUTHORIZED"}]}')
        return False

    def do_GET(self) -> None:
        if self._authorized():
            self._send(200, {}, b"{}")

    def do_HEAD(self) -> None:
        if not self._authorized():
            return
        found = re.match(r"^/v2/.+/blobs/(sha256:[0-9a-f]+)$", self.path)
        if found and found.group(1) in self.blobs:
            size = str(len(self.blobs[found.group(1)]))
            self._send(200, {"Docker-Content-Digest": found.group(1), "Content-Length": size})
        else:
            self._send(404)

    def do_POST(self) -> None:
        if not self._authorized():
            return
        self._body()
        name = self.path.split("/blobs/uploads/")[0].removeprefix("/v2/")
        upload = uuid.uuid4().hex
        self.uploads[upload] = b""
        self._send(
            202, {"Location": f"/v2/{name}/blobs/uploads/{upload}", "Docker-Upload-UUID": upload, "Range": "0-0"}
        )

    def do_PATCH(self) -> None:
        if not self._authorized():
            return
        path = self.path.partition("?")[0]
        upload = path.rsplit("/", 1)[1]
        self.uploads[upload] += self._body()
        end = max(len(self.uploads[upload]) - 1, 0)
        self._send(202, {"Location": path, "Docker-Upload-UUID": upload, "Range": f"0-{end}"})

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        body = self._body()
        path, _, query = self.path.partition("?")
        manifest = re.match(r"^/v2/(.+)/manifests/([^/]+)$", path)
        if manifest:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.manifests[(manifest.group(1), manifest.group(2))] = body
            self._send(
                201, {"Docker-Content-Digest": digest, "Location": f"/v2/{manifest.group(1)}/manifests/{digest}"}
            )
            return
        data = self.uploads.pop(path.rsplit("/", 1)[1]) + body
        digest = re.search(r"digest=([^&]+)", query).group(1).replace("%3A", ":")  # type: ignore[union-attr]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self._send(400, {}, b'{"errors": [{"code": "DIGEST_INVALID"}]}')
            return
        self.blobs[digest] = data
        name = path.split("/blobs/")[0].removeprefix("/v2/")
        self._send(201, {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/blobs/{digest}"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_registry() -> Iterator[tuple[str, type[LocalRegistry]]]:
    """(``127.0.0.1:PORT``, the handler class holding what was pushed); set ``.password`` to the expected token."""
    handler = type(
        "Registry", (LocalRegistry,), {"logins": [], "blobs": {}, "uploads": {}, "manifests": {}, "password": ""}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
