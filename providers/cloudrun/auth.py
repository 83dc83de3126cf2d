"""Google credentials of a ``cloudrun`` target: which identity calls the APIs, and which one signs URLs.

API calls
    ``credentials_file`` (a service account key) when set, else Application Default
    Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default
    login``, or the service account attached to the VM / Cloud Run service the runner is
    on). A client pointed at an emulator endpoint (``run_endpoint``, ``storage_endpoint``,
    ``logging_endpoint``) calls it without credentials: emulators check none, and a key's
    token URI (Google's) is never contacted from a machine without Google.

Signing V4 URLs (code, payload and config GETs and the result PUT of every attempt)
    * ``signer_service_account`` set: the runner signs through IAM Credentials
      ``signBlob`` as that service account, with no key file anywhere. This is how a
      runner *in* Google Cloud signs: its own identity (ADC) needs
      ``iam.serviceAccounts.signBlob`` on the signer (``roles/iam.serviceAccountTokenCreator``
      on that service account, which may be the runner's own), and the signer needs read
      and write access to the bucket (signed URLs act with the signer's permissions);
    * else ``credentials_file``: the key in that file signs locally (no call at all);
    * else Application Default Credentials that carry a key (a key file in
      ``GOOGLE_APPLICATION_CREDENTIALS``) sign locally; ADC without a key (a user's
      ``gcloud`` login, a metadata server) cannot sign: set ``signer_service_account``.

Nothing here asks ``google.auth.default()`` unless neither a key file nor an emulator
endpoint is configured, so tests never probe for a metadata server.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from mayfly.core.errors import CredentialsMissing, InvalidInput
from mayfly.providers.cloudrun.google import translate

#: OAuth scope of every call Mayfly makes (Cloud Run, Storage, Logging, IAM Credentials).
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: IAM Credentials ``signBlob`` (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob).
SIGN_BLOB_URL = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:signBlob"


def anonymous() -> Any:
    """Credentials that send no Authorization header (for emulators)."""
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def key_file_credentials(path: str) -> Any:
    """The service account in the key file at ``path`` (its key signs; its token URI is used only for API calls)."""
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        raise CredentialsMissing(f"the credentials file {path} does not exist") from None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CredentialsMissing(f"the credentials file {path} is not a service account key ({exc})") from None


def default_credentials() -> Any:
    """Application Default Credentials with the cloud-platform scope (raises CredentialsMissing without any)."""
    import google.auth

    with translate("finding Google Cloud credentials"):
        credentials, _project = google.auth.default(scopes=list(SCOPES))
    return credentials


def api_credentials(credentials_file: str | None, endpoint: str | None) -> Any:
    """Credentials for a client of one API: none for an emulator ``endpoint``, else the key file's, else ADC."""
    if endpoint:
        return anonymous()
    if credentials_file:
        return key_file_credentials(credentials_file)
    return default_credentials()


class IamSigner:
    """Signs bytes as a service account through IAM Credentials ``signBlob`` (no private key here).

    Implements ``google.auth.credentials.Signing`` (``sign_bytes``, ``signer_email``,
    ``signer``), which is what ``Blob.generate_signed_url`` needs. ``request`` is a
    ``google.auth.transport.Request``; ``credentials`` authorize the call (the runner's own).
    """

    def __init__(self, email: str, credentials: Any, request: Any = None, *, url: str = SIGN_BLOB_URL) -> None:
        if "@" not in email:
            raise InvalidInput(f"signer_service_account must be a service account email, not {email!r}")
        _register_signing()
        self._email = email
        self._credentials = credentials
        self._request = request
        self._url = url
        self._lock = threading.Lock()

    @property
    def signer_email(self) -> str:
        """The service account the signatures are from (in ``X-Goog-Credential``)."""
        return self._email

    @property
    def signer(self) -> IamSigner:
        """This object (it signs)."""
        return self

    @property
    def key_id(self) -> None:
        """IAM picks the key: none is named."""
        return None

    def _transport(self) -> Any:
        with self._lock:
            if self._request is None:
                from google.auth.transport.requests import Request

                self._request = Request()
            return self._request

    def sign(self, message: bytes | str) -> bytes:
        """The RSA-SHA256 signature of ``message`` by the service account's Google-managed key."""
        return self.sign_bytes(message)

    def sign_bytes(self, message: bytes | str) -> bytes:
        """One signBlob call; errors become Mayfly errors naming the service account."""
        data = message.encode("utf-8") if isinstance(message, str) else message
        request = self._transport()
        url = self._url.format(email=self._email)
        body = json.dumps({"payload": base64.b64encode(data).decode("ascii")}).encode()
        headers = {"Content-Type": "application/json"}
        doing = f"signing a URL as {self._email} through IAM signBlob"
        with translate(doing):
            self._credentials.before_request(request, "POST", url, headers)
            response = request(url=url, method="POST", body=body, headers=headers)
        text = response.data.decode("utf-8", errors="replace") if isinstance(response.data, bytes) else response.data
        if response.status != 200:
            from mayfly.core.errors import AccessDenied, Unavailable

            if response.status in (401, 403):
                raise AccessDenied(
                    f"{doing}: denied ({response.status}); the runner's identity needs iam.serviceAccounts.signBlob "
                    f"on {self._email} (roles/iam.serviceAccountTokenCreator): {text[:300]}"
                )
            raise Unavailable(f"{doing}: HTTP {response.status}: {text[:300]}")
        try:
            return base64.b64decode(json.loads(text)["signedBlob"])
        except (ValueError, KeyError, TypeError) as exc:
            from mayfly.core.errors import Unavailable

            raise Unavailable(f"{doing}: unexpected answer ({exc}): {text[:300]}") from None


def _as_signing(credentials: Any) -> Any:
    """``credentials`` when they can sign locally (a service account key), else None."""
    from google.auth.credentials import Signing

    return credentials if isinstance(credentials, Signing) and hasattr(credentials, "signer") else None


def signing_credentials(
    signer_service_account: str | None,
    credentials_file: str | None,
    *,
    caller: Any = None,
    request: Any = None,
) -> Any:
    """What signs the target's V4 URLs (see the module docstring for the order).

    ``caller`` authorizes signBlob (default: the key file's credentials, else ADC);
    ``request`` is the HTTP transport of that call (tests pass their own).
    """
    if signer_service_account:
        if caller is None:
            caller = key_file_credentials(credentials_file) if credentials_file else default_credentials()
        return IamSigner(signer_service_account, caller, request)
    if credentials_file:
        return key_file_credentials(credentials_file)
    found = _as_signing(default_credentials())
    if found is None:
        raise CredentialsMissing(
            "these Google credentials cannot sign URLs (no private key): set the target's signer_service_account "
            "to sign through IAM signBlob, or credentials_file to a service account key"
        )
    return found


_registered = False


def _register_signing() -> None:
    """Declare :class:`IamSigner` a ``google.auth.credentials.Signing`` (what the storage library checks)."""
    global _registered
    if not _registered:
        from google.auth.credentials import Signing

        Signing.register(IamSigner)
        _registered = True
