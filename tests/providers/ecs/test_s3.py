"""S3 blob store of the ecs provider: moto in-process, moto's server for presigned URLs used over HTTP,
and botocore's Stubber for the AWS responses moto never gives (throttling, access denied, bare 404s)."""

from __future__ import annotations

import io
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from mayfly.core.errors import AccessDenied, CredentialsMissing, InvalidInput, NotFound, Throttled, Unavailable
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.s3 import S3BlobStore

REGION = "eu-west-1"
BUCKET = "mayfly-test-bucket"
MiB = 1024 * 1024


@pytest.fixture
def served_store(fake_aws_env: None) -> Iterator[S3BlobStore]:
    """A store on moto's HTTP server (a fresh bucket), so presigned URLs can really be fetched."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        clients = Clients(REGION, endpoint_url=f"http://{host}:{port}")
        bucket = f"mayfly-{uuid.uuid4().hex[:12]}"
        clients("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield S3BlobStore(bucket, clients, prefix="mayfly")
    finally:
        server.stop()


@pytest.fixture
def stubbed(fake_aws_env: None) -> Iterator[tuple[S3BlobStore, Stubber]]:
    """A store whose client answers with recorded AWS responses (no moto, no network)."""
    store = S3BlobStore(BUCKET, Clients(REGION), prefix="mayfly")
    with Stubber(store.clients("s3")) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def raw_keys(store: S3BlobStore) -> list[str]:
    """Every key in the store's bucket, as S3 has them."""
    return [item["Key"] for item in store.clients("s3").list_objects_v2(Bucket=store.bucket).get("Contents", [])]


# ---------------------------------------------------------------- moto: the store semantics


def test_put_get_exists_delete(s3_store: S3BlobStore) -> None:
    s3_store.put("codes/abc.zip", b"zip bytes")
    assert s3_store.get("codes/abc.zip") == b"zip bytes"
    assert s3_store.exists("codes/abc.zip")
    assert raw_keys(s3_store) == ["mayfly/codes/abc.zip"]
    s3_store.put("codes/abc.zip", b"replaced")
    assert s3_store.get("codes/abc.zip") == b"replaced"
    s3_store.delete("codes/abc.zip")
    s3_store.delete("codes/abc.zip")  # absent: still fine
    assert not s3_store.exists("codes/abc.zip")
    assert raw_keys(s3_store) == []


def test_missing_keys(s3_store: S3BlobStore) -> None:
    with pytest.raises(KeyError):
        s3_store.get("runs/t1/1/result.json")
    with pytest.raises(KeyError):
        s3_store.open("runs/t1/1/result.json")
    assert s3_store.exists("runs/t1/1/result.json") is False


def test_put_file_small_and_in_parts(s3_store: S3BlobStore) -> None:
    s3_store.put_file("small", io.BytesIO(b"tiny"))
    assert s3_store.get("small") == b"tiny"
    big = os.urandom(11 * MiB)
    store = S3BlobStore(s3_store.bucket, s3_store.clients, prefix="mayfly", part_size=5 * MiB)
    store.put_file("codes/big.zip", io.BytesIO(big))
    assert store.get("codes/big.zip") == big
    head = store.clients("s3").head_object(Bucket=store.bucket, Key="mayfly/codes/big.zip")
    assert head["ETag"].endswith('-3"')  # a multipart upload of three parts


def test_open_streams(s3_store: S3BlobStore) -> None:
    data = bytes(range(256)) * 4096
    s3_store.put("logs/t1/1/00000000", data)
    with s3_store.open("logs/t1/1/00000000") as fh:
        assert fh.read(10) == data[:10]
        assert fh.read(100_000) == data[10:100_010]
        assert fh.read() == data[100_010:]
        assert fh.read(1) == b""
    assert fh.closed
    with pytest.raises(ValueError, match="closed file"):
        fh.read(1)


def test_list_is_sorted_relative_and_by_folder(s3_store: S3BlobStore) -> None:
    for key in ("logs/t1/00000002", "logs/t1/00000001", "logs/t10/00000001", "codes/a.zip"):
        s3_store.put(key, b"x")
    s3_store.clients("s3").put_object(Bucket=s3_store.bucket, Key="elsewhere/logs/t1/x", Body=b"x")
    assert list(s3_store.list("logs/t1/")) == ["logs/t1/00000001", "logs/t1/00000002"]
    assert list(s3_store.list("logs/t1")) == ["logs/t1/00000001", "logs/t1/00000002"]
    assert list(s3_store.list("")) == ["codes/a.zip", "logs/t1/00000001", "logs/t1/00000002", "logs/t10/00000001"]
    assert list(s3_store.list("nothing/")) == []


def test_bad_keys_are_refused(s3_store: S3BlobStore) -> None:
    for key in ("../x", "/abs", "a//b", "a/./b", "sp ace"):
        with pytest.raises(InvalidInput, match="invalid blob key"):
            s3_store.put(key, b"x")
        with pytest.raises(InvalidInput, match="invalid blob key"):
            s3_store.url_for(key)
    with pytest.raises(InvalidInput, match="invalid blob key"):
        list(s3_store.list("../"))
    with pytest.raises(InvalidInput, match="invalid blob key"):
        S3BlobStore(BUCKET, s3_store.clients, prefix="a/../b")
    assert raw_keys(s3_store) == []


def test_a_missing_bucket_is_not_found(s3_store: S3BlobStore) -> None:
    missing = S3BlobStore("mayfly-no-such-bucket", s3_store.clients)
    with pytest.raises(NotFound) as info:
        missing.get("k")
    assert str(info.value) == (
        "reading s3://mayfly-no-such-bucket/k: not found (NoSuchBucket: The specified bucket does not exist)"
    )
    with pytest.raises(NotFound, match="writing s3://mayfly-no-such-bucket/k: not found"):
        missing.put("k", b"x")
    with pytest.raises(NotFound, match="uploading s3://mayfly-no-such-bucket/k: not found"):
        missing.put_file("k", io.BytesIO(b"x"))
    with pytest.raises(NotFound, match="listing s3://mayfly-no-such-bucket/: not found"):
        list(missing.list(""))
    # NOTE: moto answers a HEAD in a missing bucket with NoSuchBucket; AWS with a bare 404 (see the Stubber test).
    with pytest.raises(NotFound, match="checking s3://mayfly-no-such-bucket/k: not found"):
        missing.exists("k")


# ---------------------------------------------------------------- presigned URLs over HTTP (moto's server)


def test_presigned_get(served_store: S3BlobStore) -> None:
    served_store.put("runs/t1/1/payload.json", b'{"n": 7}')
    url = served_store.url_for("runs/t1/1/payload.json", expires=600)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["600"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b'{"n": 7}'


def test_presigned_put_from_a_plain_urllib_request(served_store: S3BlobStore) -> None:
    url = served_store.url_for("runs/t1/1/result.json", method="PUT")
    # Only the host is signed: the boot script may send its own Content-Type.
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host"]
    request = urllib.request.Request(
        url, data=b'{"ok": true}', method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert served_store.get("runs/t1/1/result.json") == b'{"ok": true}'


def test_url_for_refuses_other_methods_and_long_lives(s3_store: S3BlobStore) -> None:
    with pytest.raises(InvalidInput, match="presigned URLs are for GET or PUT, not 'DELETE'"):
        s3_store.url_for("k", method="DELETE")
    with pytest.raises(InvalidInput, match=r"expire after 1 to 604800 seconds \(7 days\); got 604801"):
        s3_store.url_for("k", expires=604801)


# ---------------------------------------------------------------- errors moto does not produce (Stubber)


def test_throttled_put(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    # botocore's standard retry mode retries SlowDown itself; the Stubber answers after those retries.
    stubber.add_client_error(
        "put_object",
        service_error_code="SlowDown",
        service_message="Please reduce your request rate.",
        http_status_code=503,
    )
    with pytest.raises(Throttled) as info:
        store.put("k", b"x")
    assert str(info.value) == "writing s3://mayfly-test-bucket/mayfly/k: throttled by AWS (SlowDown)"


def test_access_denied_get(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "get_object", service_error_code="AccessDenied", service_message="Access Denied", http_status_code=403
    )
    with pytest.raises(AccessDenied) as info:
        store.get("k")
    assert str(info.value) == "reading s3://mayfly-test-bucket/mayfly/k: access denied (AccessDenied: Access Denied)"


def test_access_denied_head(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    # A HEAD response has no body: botocore reports the bare status code.
    stubber.add_client_error("head_object", service_error_code="403", service_message="Forbidden", http_status_code=403)
    with pytest.raises(AccessDenied) as info:
        store.exists("k")
    assert str(info.value) == (
        "checking s3://mayfly-test-bucket/mayfly/k: access denied "
        "(403 Forbidden; needs s3:GetObject, and s3:ListBucket for absent keys)"
    )


def test_throttled_head(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("head_object", "503", "Service Unavailable", 503)
    with pytest.raises(Throttled) as info:
        store.exists("k")
    assert str(info.value) == "checking s3://mayfly-test-bucket/mayfly/k: throttled by AWS (503 Slow Down)"


def test_a_bare_404_checks_the_bucket_once(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    params = {"Bucket": BUCKET, "Key": "mayfly/k"}
    stubber.add_client_error("head_object", "404", "Not Found", 404, expected_params=params)
    stubber.add_response("head_bucket", {}, {"Bucket": BUCKET})
    stubber.add_client_error("head_object", "404", "Not Found", 404, expected_params=params)
    assert store.exists("k") is False
    assert store.exists("k") is False


def test_a_bare_404_in_a_missing_bucket_is_not_found(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("head_object", "404", "Not Found", 404)
    stubber.add_client_error("head_bucket", "404", "Not Found", 404)
    with pytest.raises(NotFound) as info:
        store.exists("k")
    assert str(info.value) == "checking S3 bucket mayfly-test-bucket: the bucket does not exist"


def test_a_truncated_download_is_unavailable(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    for _ in range(2):
        # The connection dropped after 3 of 10 bytes: botocore checks the length at the end of the stream.
        stubber.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"abc"), 10), "ContentLength": 10})
    with pytest.raises(
        Unavailable, match=r"^reading s3://mayfly-test-bucket/mayfly/k: 3 read, but total bytes expected is 10\.$"
    ):
        store.get("k")
    with store.open("k") as fh, pytest.raises(Unavailable, match="3 read, but total bytes expected is 10"):
        fh.read()


def test_list_follows_continuation_tokens(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    first = {"Bucket": BUCKET, "Prefix": "mayfly/logs/t1/"}
    stubber.add_response(
        "list_objects_v2",
        {"IsTruncated": True, "NextContinuationToken": "page-2", "Contents": [{"Key": "mayfly/logs/t1/00000001"}]},
        first,
    )
    stubber.add_response(
        "list_objects_v2",
        {"IsTruncated": False, "Contents": [{"Key": "mayfly/logs/t1/00000002"}]},
        {**first, "ContinuationToken": "page-2"},
    )
    assert list(store.list("logs/t1/")) == ["logs/t1/00000001", "logs/t1/00000002"]


def test_no_credentials(no_aws_credentials: None) -> None:
    store = S3BlobStore(BUCKET, Clients(REGION, endpoint_url="http://127.0.0.1:9"))
    calls = (
        lambda: store.put("k", b"x"),
        lambda: store.put_file("k", io.BytesIO(b"x")),
        lambda: store.url_for("k", method="PUT"),
    )
    for call in calls:
        with pytest.raises(CredentialsMissing) as info:
            call()
        assert "no AWS credentials found" in str(info.value)
        assert "\n" not in str(info.value)
