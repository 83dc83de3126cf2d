"""Runtime images to the stack's Artifact Registry repository, as deep as this machine allows.

Artifact Registry is not reachable here. One test pushes with the real Docker engine to a local
registry that takes the token as Artifact Registry does (Basic auth as ``oauth2accesstoken``);
the others use a stand-in Docker client that records what it is asked to tag and push, through
the deploy engine's push step (which picks the gcp plug-in's registry from the stack outputs).
The image names are the ones the ``cloudrun`` provider runs; the login token comes from the
application-default credentials (a service account key whose token endpoint is a local OAuth
server that checks the signed assertion) or, without them, from a ``gcloud`` on PATH.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mayfly.core.errors import CredentialsMissing
from mayfly.infra.clouds.gcp.registry import ArtifactRegistry
from mayfly.infra.deploy import push_runtime_images
from mayfly.infra.errors import ImagePushFailed
from mayfly.infra.stackfile import parse_stack
from mayfly.providers.cloudrun.jobs import job_image
from mayfly.runtimes import catalog

REPO = "europe-west1-docker.pkg.dev/my-project/mayfly-gcp-dev"
STACK = parse_stack(
    {"cloud": "gcp", "name": "gcp-dev", "region": "europe-west1", "gcp": {"project": "my-project"}}, "test"
)
EMAIL = "deployer@my-project.iam.gserviceaccount.com"


# ---------------------------------------------------------------- a stand-in Docker client


class _Image:
    def __init__(self, client: _Client, ref: str) -> None:
        self.client, self.ref = client, ref

    def tag(self, repository: str, tag: str) -> bool:
        self.client.tagged.append((self.ref, f"{repository}:{tag}"))
        return True


class _Listed:
    def __init__(self, tags: list[str]) -> None:
        self.tags = tags


class _Images:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def get(self, ref: str) -> _Image:
        return _Image(self.client, ref)

    def list(self, filters: dict[str, str]) -> list[_Listed]:
        assert filters == {"reference": "mayfly/runtime-*"}
        return [_Listed(self.client.local)]


class _Api:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def push(self, repository: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.client.pushed.append((f"{repository}:{kwargs['tag']}", kwargs["auth_config"]))
        yield {"status": "Pushing"}
        yield self.client.last_line


class _Client:
    """The slice of the Docker SDK that a push uses."""

    def __init__(self, local: list[str], last_line: dict[str, Any] | None = None) -> None:
        self.local = local
        self.last_line = last_line or {"aux": {"Tag": "1", "Digest": "sha256:abc"}}
        self.tagged: list[tuple[str, str]] = []
        self.pushed: list[tuple[str, dict[str, str]]] = []
        self.images = _Images(self)
        self.api = _Api(self)


# ---------------------------------------------------------------- credentials


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No application-default credentials and no gcloud: PATH holds only an empty directory of ours."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    # google-auth raises at once for a key file that does not exist: it never looks further (no metadata server).
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    return bin_dir


class _TokenServer(BaseHTTPRequestHandler):
    """Google's OAuth token endpoint for a service account: a JWT bearer assertion in, an access token out."""

    public_key: Any = None
    asked: list[dict[str, Any]]

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        header, claims, signature = form["assertion"][0].split(".")
        pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
        # The assertion is signed with the key file's private key (raises InvalidSignature otherwise).
        self.public_key.verify(pad(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        self.asked.append(json.loads(pad(claims)))
        body = json.dumps({"access_token": "ya29.from-adc", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def adc_key(no_credentials: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A service account key in GOOGLE_APPLICATION_CREDENTIALS whose token endpoint is a local server."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    handler = type("Handler", (_TokenServer,), {"public_key": key.public_key(), "asked": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = tmp_path / "key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "my-project",
                "private_key_id": "1",
                "private_key": pem.decode(),
                "client_email": EMAIL,
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{server.server_address[1]}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    try:
        yield handler.asked
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- tests


def test_runtime_images_go_where_the_cloudrun_provider_runs_them(adc_key: list[dict[str, Any]]) -> None:
    client = _Client(["mayfly/runtime-shell:1", "mayfly/runtime-shell:latest", "mayfly/runtime-python-3.11:2"])
    pushed = push_runtime_images(STACK, {"repository_url": REPO}, client=client)
    # :latest aliases stay local; each runtime is an image of its own in the repository.
    expected = [f"{REPO}/runtime-python-3.11:2", f"{REPO}/runtime-shell:1"]
    assert [p.remote for p in pushed] == expected
    assert [remote for _, remote in client.tagged] == expected
    assert [p.digest for p in pushed] == ["sha256:abc", "sha256:abc"]
    # Docker logs in to the region's registry host with the ADC access token as oauth2accesstoken.
    auth = {
        "username": "oauth2accesstoken",
        "password": "ya29.from-adc",
        "serveraddress": "https://europe-west1-docker.pkg.dev",
    }
    assert client.pushed == [(remote, auth) for remote in expected]
    (claims,) = adc_key  # one token for the whole push
    assert (claims["iss"], claims["scope"]) == (EMAIL, "https://www.googleapis.com/auth/cloud-platform")
    # The same names the cloudrun provider runs, from the target's image_prefix, for every runtime.
    every = _Client([runtime.image for runtime in catalog()])
    assert [p.remote for p in push_runtime_images(STACK, {"repository_url": REPO}, client=every)] == sorted(
        job_image(runtime.image, REPO) for runtime in catalog()
    )


def test_without_adc_the_gcloud_login_is_used(no_credentials: Path) -> None:
    gcloud = no_credentials / "gcloud"
    gcloud.write_text('#!/bin/sh\n[ "$1 $2" = "auth print-access-token" ] && echo ya29.from-gcloud\n')
    gcloud.chmod(0o755)
    client = _Client(["mayfly/runtime-shell:1"])
    push_runtime_images(STACK, {"repository_url": REPO}, client=client)
    assert [auth["password"] for _, auth in client.pushed] == ["ya29.from-gcloud"]


def test_no_credentials_at_all_is_one_line_before_anything_is_tagged(no_credentials: Path) -> None:
    client = _Client(["mayfly/runtime-shell:1"])
    with pytest.raises(CredentialsMissing) as info:
        push_runtime_images(STACK, {"repository_url": REPO}, client=client)
    assert info.value.message == (
        "no Google Cloud credentials to push images to Artifact Registry: run `gcloud auth application-default "
        "login` (or set GOOGLE_APPLICATION_CREDENTIALS), or deploy with --skip-images"
    )
    assert (client.tagged, client.pushed) == ([], [])


def test_a_refused_push_is_one_line(adc_key: list[dict[str, Any]]) -> None:
    client = _Client(
        ["mayfly/runtime-shell:1"],
        {"error": "denied: Permission 'artifactregistry.repositories.uploadArtifacts' denied"},
    )
    with pytest.raises(ImagePushFailed) as info:
        push_runtime_images(STACK, {"repository_url": REPO}, client=client)
    assert info.value.message == (
        f"pushing mayfly/runtime-shell:1 to {REPO}/runtime-shell:1: "
        "denied: Permission 'artifactregistry.repositories.uploadArtifacts' denied"
    )


@pytest.mark.docker
def test_the_real_engine_pushes_a_runtime_with_the_adc_token(
    adc_key: list[dict[str, Any]], local_registry: tuple[str, Any], docker_client: Any, busybox_image: str
) -> None:
    host, registry = local_registry
    registry.password = "ya29.from-adc"  # what the local token endpoint hands out for the key
    local = f"mayfly/runtime-gcpdeploy{uuid.uuid4().hex[:8]}:1"
    docker_client.images.get(busybox_image).tag(local.rsplit(":", 1)[0], tag="1")
    repository_url = f"{host}/my-project/mayfly-gcp-dev"
    remote = f"{repository_url}/runtime-{local.removeprefix('mayfly/runtime-')}"
    try:
        (pushed,) = ArtifactRegistry(repository_url).push(docker_client, [local], lambda _line: None)
    finally:
        docker_client.images.remove(local)
        with contextlib.suppress(Exception):  # the tag the push made, if it got that far
            docker_client.images.remove(remote)
    name = remote.removeprefix(f"{host}/").rsplit(":", 1)[0]
    assert pushed.remote == remote
    # The registry got the manifest under the runtime's own image name and version, and its digest came back.
    assert set(registry.manifests) == {(name, "1")}
    assert pushed.digest == "sha256:" + hashlib.sha256(registry.manifests[(name, "1")]).hexdigest()
    assert set(registry.logins) == {("oauth2accesstoken", "ya29.from-adc")}
