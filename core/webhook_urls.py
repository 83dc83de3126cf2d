"""Which webhook URLs Mayfly POSTs to: the SSRF guard (OWASP API7).

A webhook URL is user input that makes the control plane send requests from
inside its network, so by default only public http(s) addresses are allowed:

* the scheme is ``http`` or ``https``; no credentials in the URL;
* the host is not ``localhost`` (or ``*.localhost``);
* every address the host resolves to is public: not loopback, link-local
  (169.254.0.0/16, where clouds serve instance metadata), private (RFC 1918,
  unique-local IPv6, 100.64.0.0/10), multicast, unspecified or reserved.

``MAYFLY_WEBHOOK_ALLOW_PRIVATE=1`` allows loopback, link-local and private
addresses for local development and tests. Cloud metadata endpoints, multicast,
unspecified and reserved addresses stay refused even then.

The check runs when a URL is stored (queue, push) and again before every
send, because what a name resolves to may change; the sender then connects to
the very addresses it checked, so a second lookup cannot slip another in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mayfly.core.errors import InvalidInput

ALLOW_PRIVATE_ENV = "MAYFLY_WEBHOOK_ALLOW_PRIVATE"
MAX_URL_LENGTH = 2048
_HINT = f" ({ALLOW_PRIVATE_ENV}=1 allows it for local development)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port → the addresses it resolves to (``socket.getaddrinfo`` by default).
Resolver = Callable[[str, int], Sequence[str]]

#: Instance metadata services (AWS, ECS task metadata, GCP, Azure, Alibaba, AWS IPv6): never allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


class WebhookRefused(InvalidInput):
    """A webhook URL the SSRF guard refuses; nothing was stored."""

    code = "webhook_refused"


@dataclass(frozen=True)
class Policy:
    """What the guard allows beyond public addresses."""

    allow_private: bool = False

    @classmethod
    def from_env(cls) -> Policy:
        return cls(allow_private=os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes"))


@dataclass(frozen=True)
class Endpoint:
    """A checked URL, split for sending: connect to ``addresses``, send ``Host: host``."""

    scheme: str
    host: str
    port: int
    #: Path and query, as sent on the request line.
    target: str
    addresses: tuple[str, ...]


def system_resolve(host: str, port: int) -> list[str]:
    """Every address of ``host`` (IPv4 and IPv6), without IPv6 scope ids."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def validate_url(url: str, policy: Policy | None = None, resolve: Resolver = system_resolve) -> str:
    """Check a URL before it is stored; raises :class:`WebhookRefused` or :class:`InvalidInput`.

    A name that does not resolve now is accepted (DNS may be briefly down); the
    check before each send refuses it if it then resolves somewhere forbidden.
    """
    with contextlib.suppress(OSError):
        endpoint(url, policy, resolve)
    return url


def endpoint(url: str, policy: Policy | None = None, resolve: Resolver = system_resolve) -> Endpoint:
    """Check a URL and resolve it for sending; raises OSError when its name does not resolve."""
    policy = policy or Policy.from_env()
    scheme, host, port, target = _split(url)
    name = host.lower().rstrip(".")
    if (name == "localhost" or name.endswith(".localhost")) and not policy.allow_private:
        raise WebhookRefused(f"webhook URL refused: {host} is this machine{_HINT}")
    if name in METADATA_HOSTS:
        raise WebhookRefused(f"webhook URL refused: {host} is a cloud metadata service")
    literal = _ip(host)
    if literal is not None:
        _check_address(literal, policy, host)
        return Endpoint(scheme, host, port, target, (str(literal),))
    addresses = list(resolve(host, port))
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        ip = _ip(address)
        if ip is None:
            raise OSError(f"{host} resolved to {address!r}, not an address")
        _check_address(ip, policy, host)
    return Endpoint(scheme, host, port, target, tuple(addresses))


def _split(url: str) -> tuple[str, str, int, str]:
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"invalid webhook URL: give 1 to {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidInput("invalid webhook URL: it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"invalid webhook URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"scheme {scheme!r}" if scheme else "a URL without a scheme"
        raise WebhookRefused(f"webhook URL refused: {shown} is not allowed (use http or https)")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook URL refused: credentials in the URL are not supported")
    host = parts.hostname
    if not host:
        raise InvalidInput("invalid webhook URL: it has no host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), target


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    return ip


def _check_address(ip: IPAddress, policy: Policy, host: str) -> None:
    kind, overridable = _classify(ip)
    if kind is None or (overridable and policy.allow_private):
        return
    where = str(ip) if host.strip("[]") == str(ip) else f"{host} resolves to {ip}, which"
    hint = _HINT if overridable else ""
    raise WebhookRefused(f"webhook URL refused: {where} is {kind}{hint}")


def _classify(ip: IPAddress) -> tuple[str | None, bool]:
    """What is wrong with an address (None: public) and whether the override allows it."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address", False
    if ip.is_unspecified:
        return "the unspecified address", False
    if ip.is_multicast:
        return "a multicast address", False
    if ip.is_loopback:
        return "a loopback address", True
    if ip.is_link_local:
        return "a link-local address", True
    if ip.is_reserved:
        return "a reserved address", False
    if ip.is_private or ip in _SHARED:
        return "a private address", True
    if not ip.is_global:
        return "a reserved address", False
    return None, False


#: Carrier-grade NAT (RFC 6598): not global, not "private" to the ipaddress module.
_SHARED = ipaddress.ip_network("100.64.0.0/10")
