"""Outbound HTTP sessions: a connection per worker thread, and the environment's proxy and CA settings read once.

A `requests` session that trusts the environment rescans every variable for proxy settings on every request (a
sixth of a Table request's CPU time in a profile of `python -m bench`), and may add `.netrc` credentials to a
request that carries its own. App settings cannot change while the app runs, so the sessions here trust nothing
at request time: the proxy for each host the app calls is resolved when its client is built (`NO_PROXY`
honoured), and a `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` (a TLS-inspecting firewall) becomes the session's CA
bundle.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import os
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy
from urllib3.util.retry import Retry

# One pooled connection per worker thread (the template sets PYTHON_THREADPOOL_THREAD_COUNT=32). requests keeps
# 10 by default: past 10 concurrent requests each one opened a connection and threw it away.
POOL_CONNECTIONS = 32


class NoRedirectSession(requests.Session):
    """A session that never reads a redirect, keeps no cookie, and trusts nothing from the environment at request
    time.

    The app follows no redirect (a followed 307 sends a create again; a callback must reach only the URL that was
    checked). Told not to follow one, requests still reads it, for `Response.next`: it downloads the redirect's
    body, however long and slow, and parses its Location, raising a plain ValueError for a malformed one, after
    the request was sent. A 3xx here is an answer like any other, its body never read unless asked for.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        # No cookies kept: one session serves every status-callback receiver (and Genesys, and storage), so a
        # cookie one sets would go with every later request to its host, another caller's too.
        self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def session(*base_urls: str, retries: Retry | int = 0) -> requests.Session:
    """A session for requests to `base_urls` only; `retries` are urllib3's (0: none; callers retry themselves)."""
    pooled = NoRedirectSession()
    adapter = HTTPAdapter(pool_connections=max(1, len(base_urls)), pool_maxsize=POOL_CONNECTIONS, max_retries=retries)
    pooled.mount("https://", adapter)
    pooled.mount("http://", adapter)
    pooled.proxies = proxies_for(*base_urls)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        pooled.verify = ca_bundle
    return pooled


def proxies_for(*base_urls: str) -> dict[str, str]:
    """The environment's proxy for each URL's host, as requests would choose it (`NO_PROXY` honoured), keyed
    `scheme://host` so that it applies to that host only; empty when no proxy applies."""
    found: dict[str, str] = {}
    for url in base_urls:
        proxy = select_proxy(url, get_environ_proxies(url))
        if proxy:
            parts = urlsplit(url)
            found[f"{parts.scheme}://{parts.hostname}"] = proxy
    return found


def is_loopback(host: str) -> bool:
    """Whether `host` (a URL's hostname) is this machine: the only place plain HTTP may go (local emulators)."""
    name = host.lower().rstrip(".")  # `localhost.` is the same name, fully qualified
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost"
