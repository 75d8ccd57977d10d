"""CSRF defence for the cookie transport: the CSRF value of a session, and trusted origins.

Framework-free, like :mod:`redis_jwt._web`: the middleware, the FastAPI
dependencies and any other adapter judge a request the same way.

The CSRF value of a session is ``base64url(HMAC-SHA256(key, token))`` without
padding, where ``key`` is a fixed label of this library and ``token`` the
session token the cookie carries. Nobody can compute it without the token
(its signature is a keyed MAC of the server's), so a cross-site page, which
cannot read the HttpOnly session cookie, cannot forge it; no Redis write is
needed, every instance computes the same value, and it changes whenever the
token changes. The check compares the header with the value *computed from the
session cookie*, never with the readable CSRF cookie, so a cookie planted by a
sibling subdomain proves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = [
    "SAFE_METHODS",
    "csrf_valid",
    "csrf_value",
    "is_local_host",
    "origin_trusted",
    "parse_origins",
]

#: Methods that must not change state (RFC 9110 9.2.1); every other method needs the CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Domain separation: this MAC serves one purpose and never collides with another use of the token.
_KEY = b"redis-jwt/csrf/v1"
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
#: An origin as compared: scheme, lowercase host, port.
Origin = tuple[str, str, int]


def csrf_value(token: str) -> str:
    """Return the CSRF value bound to the session ``token`` (43 URL-safe characters)."""
    digest = hmac.new(_KEY, token.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_valid(token: str, sent: str | None) -> bool:
    """Whether ``sent`` (the ``X-CSRF-Token`` header) is the CSRF value of ``token``.

    Compared in constant time, so the comparison leaks nothing of the expected value.
    """
    if not sent:
        return False
    expected = csrf_value(token).encode("ascii")
    return hmac.compare_digest(expected, sent.encode("latin-1", "replace"))


def _origin(value: str) -> Origin | None:
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, _DEFAULT_PORTS[scheme] if port is None else port


def parse_origins(origins: Iterable[str]) -> frozenset[Origin]:
    """Parse ``trusted_origins=`` (``"https://app.example.com"``, a port when not the default).

    Raises:
        ConfigurationError: an entry is not a ``http(s)://host[:port]`` origin.
    """
    if isinstance(origins, str):
        origins = (origins,)
    parsed: set[Origin] = set()
    for entry in origins:
        origin = _origin(entry)
        if origin is None or urlsplit(entry.strip()).path not in ("", "/"):
            raise ConfigurationError(
                f"trusted origin {entry!r} is not an origin: write it as "
                "'https://host' or 'https://host:port'"
            )
        parsed.add(origin)
    return frozenset(parsed)


def _host_port(host_header: str, default_port: int) -> tuple[str, int] | None:
    value = host_header.strip().lower()
    port = ""
    if value.startswith("["):  # an IPv6 literal, maybe with a port: [::1]:8000
        host, _sep, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    elif value.count(":") == 1:
        host, _sep, port = value.partition(":")
    else:  # no port, or a bare IPv6 address
        host = value
    if not host:
        return None
    if not port:
        return host, default_port
    return (host, int(port)) if port.isdigit() and len(port) <= 5 else None


def origin_trusted(origin: str, host_header: str | None, trusted: frozenset[Origin]) -> bool:
    """Whether a WebSocket handshake's ``Origin`` may use the session cookie.

    Trusted: an origin listed in ``trusted``, or one naming the same host and
    port as the ``Host`` header (the page was served by this very site). The
    ``null`` origin and anything unparsable are not trusted.
    """
    parsed = _origin(origin)
    if parsed is None:
        return False
    if parsed in trusted:
        return True
    if host_header is None:
        return False
    return _host_port(host_header, parsed[2]) == parsed[1:]


def is_local_host(host_header: str | None) -> bool:
    """Whether a ``Host`` header names a machine that is not a public site.

    Local: ``localhost`` and ``*.localhost``, loopback addresses, and single-label
    names (no dot, such as the test clients' ``testserver`` or a container's
    service name): no public site has one.
    """
    if not host_header:
        return False
    found = _host_port(host_header, 0)
    if found is None:
        return False
    host = found[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return "." not in host
