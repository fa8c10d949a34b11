"""CIClient on the wire without the emulator: timeouts, refusals, TLS and scripted answers."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import pytest
from client_support import CREDS, FAST

from cijobs_analytics._http_errors import ERROR_HEAD_CHARS, send_error
from cijobs_analytics.client import CIClient
from cijobs_analytics.config import Credentials
from cijobs_analytics.errors import APIError, AuthError, ConfigError, ServerError, TransportError

# --- network faults without the emulator ---------------------------------------------------------


def test_silent_server_times_out(unused_tcp_port: int) -> None:
    """A server that accepts and never answers: TransportError after the retries."""
    with socket.create_server(("127.0.0.1", unused_tcp_port), backlog=16):
        creds = Credentials("AKIDexample", "secret")
        with CIClient(
            "examplebucket-1250000000",
            "ap-guangzhou",
            creds,
            f"http://127.0.0.1:{unused_tcp_port}",
            timeout=(1.0, 0.2),
            max_retries=2,
            **FAST,
        ) as client:
            started = time.perf_counter()
            with pytest.raises(TransportError, match="timed out") as info:
                client.list_jobs("Transcode")
            assert time.perf_counter() - started >= 0.6
            assert client.stats.requests == 3
            assert client.stats.errors_by_code == {"TransportError": 3}
    assert info.value.transient
    assert "secret" not in str(info.value)


def test_connection_refused(unused_tcp_port: int) -> None:
    """Nothing listening: TransportError after the retries."""
    with CIClient(
        "examplebucket-1250000000",
        "ap-guangzhou",
        Credentials("AKIDexample", "secret"),
        f"http://127.0.0.1:{unused_tcp_port}",
        max_retries=1,
        **FAST,
    ) as client:
        with pytest.raises(TransportError) as info:
            client.list_jobs("Transcode")
        assert client.stats.requests == 2
    assert "Connection refused" in str(info.value)


@pytest.fixture
def unused_tcp_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- a scripted loopback server for answers the emulator does not give ----------------------------


@dataclass
class Reply:
    status: int
    body: bytes | Callable[[dict[str, str]], bytes] = b""
    headers: tuple[tuple[str, str], ...] = ()


class ScriptedServer(ThreadingHTTPServer):
    """Answers the n-th request with the n-th reply (the last one repeats); keeps what came."""

    daemon_threads = True

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.replies = replies
        self.received: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.received.append(dict(self.headers.items()))
            self.server.paths.append(self.path)
            reply = self.server.replies[
                min(len(self.server.received), len(self.server.replies)) - 1
            ]
        body = reply.body(dict(self.headers.items())) if callable(reply.body) else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Reply]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(replies: list[Reply]) -> ScriptedServer:
        server = ScriptedServer(replies)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


PAGE = (
    b"<Response><JobsDetail><JobId>j1</JobId><State>Success</State></JobsDetail>"
    b"<NextToken/></Response>"
)


def _scripted_client(server: ScriptedServer, **kwargs: Any) -> CIClient:
    return CIClient(
        "examplebucket-1250000000", "ap-guangzhou", CREDS, server.url, **{**FAST, **kwargs}
    )


@pytest.mark.parametrize("as_xml", [True, False])
def test_error_body_echoing_secrets_is_scrubbed(
    scripted: Callable[[list[Reply]], ScriptedServer], as_xml: bool
) -> None:
    """A server that echoes Authorization, key and token in its message: all are redacted."""

    def echo(headers: dict[str, str]) -> bytes:
        text = f"got {headers['Authorization']} for {CREDS.secret_key} and {CREDS.token}"
        if not as_xml:
            return text.encode()
        return (
            f"<Error><Code>AccessDenied</Code><Message>{xml_escape(text)}</Message>"
            "<RequestId>r-1</RequestId></Error>"
        ).encode()

    server = scripted([Reply(403, echo)])
    with _scripted_client(server) as client, pytest.raises(AuthError) as info:
        client.list_jobs("Transcode")
    sent = server.received[0]["Authorization"]
    text = str(info.value)
    assert "<redacted>" in text
    for secret in (
        sent,
        sent.rpartition("q-signature=")[2],
        "very-secret-key",
        "very-secret-token",
    ):
        assert secret not in text
    if as_xml:
        assert (info.value.code, info.value.status, info.value.request_id) == (
            "AccessDenied",
            403,
            "r-1",
        )
    else:
        assert (info.value.code, info.value.status) == ("HTTP403", 403)
    assert len(server.received) == 1
    assert server.received[0]["x-ci-security-token"] == "very-secret-token"
    assert server.received[0]["Host"] == "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"


def test_redirect_not_followed(scripted: Callable[[list[Reply]], ScriptedServer]) -> None:
    """A 307 is an APIError, not followed (the signed request never goes elsewhere)."""
    body = b"<Error><Code>TemporaryRedirect</Code><Message>moved</Message></Error>"
    server = scripted([Reply(307, body, (("Location", "http://127.0.0.1:9/jobs"),))])
    with _scripted_client(server) as client, pytest.raises(APIError) as info:
        client.list_jobs("Transcode")
    assert type(info.value) is APIError
    assert (info.value.code, info.value.status) == ("TemporaryRedirect", 307)
    assert len(server.received) == 1


def test_non_xml_502_retried_then_page(scripted: Callable[[list[Reply]], ScriptedServer]) -> None:
    """A proxy's plain-text 502 is a ServerError (code HTTP502) and is retried."""
    server = scripted([Reply(502, b"Bad Gateway"), Reply(200, PAGE)])
    with _scripted_client(server) as client:
        page = client.list_jobs("Transcode")
        assert client.stats.errors_by_code == {"HTTP502": 1}
    assert (page.attempts, page.table.column("job_id").to_pylist(), page.next_token) == (
        2,
        ["j1"],
        None,
    )
    server.replies = [Reply(502, b"Bad Gateway")]
    server.received.clear()
    expected = r"HTTP502 \(HTTP 502\): Bad Gateway"
    with (
        _scripted_client(server, max_retries=1) as client,
        pytest.raises(ServerError, match=expected),
    ):
        client.list_jobs("Transcode")


def test_429_honours_retry_after(scripted: Callable[[list[Reply]], ScriptedServer]) -> None:
    """429 with Retry-After: a ThrottledError retried no sooner than asked."""
    server = scripted([Reply(429, b"", (("Retry-After", "0.3"),)), Reply(200, PAGE)])
    with _scripted_client(server, max_backoff=1.0) as client:
        started = time.perf_counter()
        page = client.list_jobs("Transcode")
        assert time.perf_counter() - started >= 0.3
        assert client.stats.throttled == 1
    assert page.attempts == 2


def test_tls_verification_stays_on(
    tmp_path: Path, scripted: Callable[[list[Reply]], ScriptedServer]
) -> None:
    """A self-signed HTTPS endpoint is refused (TransportError, not retried)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [  # noqa: S607 - the system openssl makes a throwaway certificate
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = scripted([Reply(200, PAGE)])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with CIClient(
        "examplebucket-1250000000",
        "ap-guangzhou",
        CREDS,
        server.url.replace("http:", "https:"),
        **FAST,
    ) as client:
        with pytest.raises(TransportError, match="TLS") as info:
            client.list_jobs("Transcode")
        assert client.stats.requests == 1
    assert not info.value.transient
    assert server.received == []


def test_wire_encoding_of_every_parameter(
    scripted: Callable[[list[Reply]], ScriptedServer],
) -> None:
    """Times go out as +0800 local time with ':' and '+' escaped; other values are %XX-encoded."""
    server = scripted([Reply(200, PAGE)])
    with _scripted_client(server) as client:
        client.list_jobs(
            "Transcode",
            queue_id="p1",
            states=["Success", "Failed"],
            start=datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC),
            end="2026-11-01T09:30:15.7+00:00",
            size=50,
            next_token="a+b/c=",
            workflow_id="w1",
            input_object="in/a b&c=腾.mp4",
        )
        client.get_jobs(["j1", "j2"])
    assert server.paths == [
        "/jobs?tag=Transcode&queueId=p1&states=Success%2CFailed"
        "&startCreationTime=2026-11-01T16%3A00%3A00%2B0800"
        "&endCreationTime=2026-11-01T17%3A30%3A15%2B0800"
        "&orderByTime=Asc&size=50&nextToken=a%2Bb%2Fc%3D&workflowId=w1"
        "&inputObject=in%2Fa%20b%26c%3D%E8%85%BE.mp4",
        "/jobs/j1,j2",
    ]
    fields = dict(pair.split("=", 1) for pair in server.received[0]["Authorization"].split("&"))
    assert fields["q-url-param-list"] == (
        "endcreationtime;inputobject;nexttoken;orderbytime;queueid;size;startcreationtime;"
        "states;tag;workflowid"
    )
    assert fields["q-header-list"] == "host;x-ci-security-token"
    assert server.received[1]["Authorization"].split("&")[5] == "q-url-param-list="


def _unchecked(creds: Credentials, **fields: str) -> Credentials:
    """Credentials holding values ``Credentials`` itself refuses: the client must stay safe
    even when a credential got past that check (an object built before it existed)."""
    forged = Credentials(creds.secret_id, creds.secret_key, creds.token)
    for name, value in fields.items():
        object.__setattr__(forged, name, value)
    return forged


@pytest.mark.parametrize(
    ("fields", "user_agent"),
    [
        ({"token": "very-secret-token\n"}, "cijobs-analytics/test"),
        ({"secret_id": "AKIDexample\r\n"}, "cijobs-analytics/test"),
        ({}, "cijobs-analytics/test\nX-Injected: 1"),
    ],
    ids=["token-header", "authorization-header", "user-agent"],
)
def test_header_refused_by_http_is_a_config_error_without_secrets(
    scripted: Callable[[list[Reply]], ScriptedServer], fields: dict[str, str], user_agent: str
) -> None:
    """http.client's ValueError (and requests' InvalidHeader) quoting a header value becomes
    a ConfigError, raised at once, whose text and chain hold no credential nor signature."""
    server = scripted([Reply(200, PAGE)])
    client = CIClient(
        "examplebucket-1250000000",
        "ap-guangzhou",
        _unchecked(CREDS, **fields),
        server.url,
        user_agent=user_agent,
        **FAST,
    )
    with client, pytest.raises(ConfigError) as info:
        client.list_jobs("Transcode")
    text = str(info.value)
    assert text.startswith(f"a request to 127.0.0.1:{server.server_address[1]} could not be sent")
    assert "<redacted>" in text
    for leaked in ("very-secret", "q-signature", "AKIDexample", "X-Injected"):
        assert leaked not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert not info.value.transient
    assert client.stats.requests == 1
    assert client.stats.errors_by_code == {"ConfigError": 1}
    assert server.received == []


def test_send_error_maps_http_exception_to_scrubbed_transport_error() -> None:
    """An http.client.HTTPException escaping requests is a transient TransportError whose text
    holds neither a secret (in any quoting) nor a quoted literal."""
    exc = http.client.BadStatusLine('HTTP/1.1 very-secret-token\n 200 "ok"')
    error = send_error(exc, "h:1", ["very-secret-key", "very-secret-token"])
    assert type(error) is TransportError
    assert str(error) == "BadStatusLine with h:1: HTTP/1.1 <redacted> 200 <redacted>"
    assert error.transient


def test_proxy_html_502_keeps_its_text_scrubbed(
    scripted: Callable[[list[Reply]], ScriptedServer],
) -> None:
    """An nginx-style HTML 502 page gives its words as the message: markup, script and style
    left out, whitespace collapsed, the echoed token and Authorization header redacted, and
    the text cut to ERROR_HEAD_CHARS."""

    def page(headers: dict[str, str]) -> bytes:
        return (
            "<html>\r\n<head><title>502 Bad Gateway</title>\r\n<style>body { color: red }</style>"
            "</head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
            "<p>upstream timed out (110: Connection timed out) while reading response header"
            f"\n    from upstream; token {headers['x-ci-security-token']}</p>"
            f"<!-- {headers['Authorization']} --><script>var a = 1;</script>\r\n"
            f"<hr><center>nginx/1.25.3</center>\r\n{'<p>padding</p>' * 40}</body>\r\n</html>\r\n"
        ).encode()

    server = scripted([Reply(502, page, (("Content-Type", "text/html"),))])
    with _scripted_client(server, max_retries=0) as client, pytest.raises(ServerError) as info:
        client.list_jobs("Transcode")
    expected = (
        "502 Bad Gateway 502 Bad Gateway upstream timed out (110: Connection timed out) "
        "while reading response header from upstream; token <redacted> nginx/1.25.3"
        + " padding"
        * 40
    )[:ERROR_HEAD_CHARS]
    assert (info.value.code, info.value.status, info.value.error_message) == (
        "HTTP502",
        502,
        expected,
    )
    assert len(info.value.error_message) == ERROR_HEAD_CHARS
    text = str(info.value)
    for leaked in ("very-secret", "q-signature", "var a", "color", "<center>"):
        assert leaked not in text


# --- host names that do not resolve --------------------------------------------------------------

#: A region CI does not have: its host name does not exist.
TYPO_HOST = "examplebucket-1250000000.ci.ap-nowhere.myqcloud.com"


@pytest.fixture
def dns_answers(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make ``*.myqcloud.com`` names fail to resolve with a given ``EAI_*`` code.

    No test may reach the real service, and with DNS at hand the typo host could resolve
    (or not) at the whim of the zone; other names resolve as usual.
    """
    real = socket.getaddrinfo

    def answer(code: int) -> None:
        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(host, str) and host.endswith(".myqcloud.com"):
                raise socket.gaierror(code, "Name or service not known")
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return answer


@pytest.mark.timeout(30)
def test_a_ci_host_that_does_not_exist_names_the_region(dns_answers: Callable[[int], None]) -> None:
    """Without an endpoint, a region typo makes a host name that does not exist: one attempt,
    no retries, and a message that says to check --region."""
    dns_answers(socket.EAI_NONAME)
    with CIClient("examplebucket-1250000000", "ap-nowhere", CREDS, max_retries=3, **FAST) as client:
        started = time.perf_counter()
        with pytest.raises(TransportError) as info:
            client.list_jobs("Transcode")
        assert time.perf_counter() - started < 5
        assert client.stats.requests == 1
    assert str(info.value) == (
        f"cannot resolve {TYPO_HOST} (Name or service not known); check the region "
        "(--region ap-nowhere): the host is <bucket>.ci.<region>.myqcloud.com, which exists "
        "only for a region CI serves"
    )
    assert not info.value.transient


@pytest.mark.timeout(30)
def test_a_resolver_that_does_not_answer_is_retried(dns_answers: Callable[[int], None]) -> None:
    """EAI_AGAIN (no answer from DNS) may pass: retried, and the message names DNS first."""
    dns_answers(socket.EAI_AGAIN)
    with CIClient("examplebucket-1250000000", "ap-nowhere", CREDS, max_retries=2, **FAST) as client:
        with pytest.raises(TransportError) as info:
            client.list_jobs("Transcode")
        assert client.stats.requests == 3
    assert str(info.value) == (
        f"cannot resolve {TYPO_HOST} (Name or service not known); check the network's DNS, "
        "and the region (--region) if this persists"
    )
    assert info.value.transient


@pytest.mark.timeout(60)
def test_an_endpoint_that_does_not_resolve_names_the_endpoint() -> None:
    """A name under .invalid (RFC 6761) never resolves; the message points at --endpoint."""
    with (
        CIClient(
            "examplebucket-1250000000",
            "ap-guangzhou",
            CREDS,
            "http://cijobs-emulator.invalid:8089",
            timeout=(2.0, 2.0),
            max_retries=0,
        ) as client,
        pytest.raises(TransportError) as info,
    ):
        client.list_jobs("Transcode")
    assert str(info.value).startswith("cannot resolve cijobs-emulator.invalid:8089 (")
    assert str(info.value).endswith("); check the endpoint (--endpoint)")
