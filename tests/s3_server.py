"""A real S3 endpoint for the tests: moto's standalone server in a child process.

Moto runs as a separate process, never in-process: an in-process moto deadlocks delta-rs.
:class:`S3Server` starts ``moto_server`` on a free loopback port, waits until it answers, and
stops it (terminate, then kill).

:class:`S3Proxy` plays a worse store than moto: a loopback proxy that forwards every request
to a server, dropping ``If-None-Match`` and ``If-Match`` (a store that ignores conditional
writes) or answering with an error status instead (a store that turns us away). Moto does not
verify request signatures, so the forwarded requests still work.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

__all__ = ["S3Proxy", "S3Server"]

#: The region and the (fake) key every client of the test server uses.
REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"

#: How long a starting server may take to answer before the start fails.
START_TIMEOUT_S = 20.0
#: How long a terminated server may take to exit before it is killed.
STOP_TIMEOUT_S = 5.0
#: prctl(2) option: the signal a child gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Have the kernel stop the child when the test process dies without stopping it."""
    # A killed pytest (SIGKILL, a CI timeout) runs no fixture teardown; PR_SET_PDEATHSIG
    # keeps its moto server from lingering on the port all the same.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a child, then kill it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto's S3 server in a child process on a free loopback port.

    Example:
        >>> with S3Server() as s3:  # doctest: +SKIP
        ...     bucket = s3.create_bucket("test-bucket-1")
    """

    def __init__(self) -> None:
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The server's URL, e.g. ``http://127.0.0.1:53412``."""
        if self.port is None:
            raise RuntimeError("the S3 server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, str]:
        """object_store options that point a client at this server."""
        return {
            "endpoint": self.endpoint,
            "allow_http": "true",
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
        }

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables that point a child process (delta-rs, ``cijobs``) here.

        Args:
            base: the variables to start from; ``os.environ`` when None.

        Returns:
            A copy of ``base`` with the ``AWS_*`` endpoint, region and key set, and any
            session token removed (it would not belong to this key).
        """
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            }
        )
        env.pop("AWS_SESSION_TOKEN", None)
        return env

    def create_bucket(self, name: str) -> str:
        """Create the bucket ``name`` (a valid S3 name, e.g. ``test-bucket-1``); returns it."""
        import boto3  # a moto dependency; imported here so that importing this module is cheap

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def start(self) -> S3Server:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: it exited or did not answer within ``START_TIMEOUT_S``.
        """
        if self._proc is not None:
            return self
        executable = Path(sys.executable).with_name("moto_server")
        # moto logs every request; a file, unlike a pipe nobody reads, never fills up and
        # blocks it, and its tail explains a failed start.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        # Another process may take the free port between our probe and moto's bind; moto then
        # exits at once and a new port is tried.
        for _ in range(3):
            self.port = _free_port()
            self._proc = subprocess.Popen(
                [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            if self._wait_until_up():
                return self
            if self._proc.poll() is None:
                break  # running but silent: a port clash would have made it exit
        tail = self._log_tail()
        self.stop()
        raise RuntimeError(f"moto_server did not start within {START_TIMEOUT_S:.0f} s:\n{tail}")

    def stop(self) -> None:
        """Stop the server (terminate, then kill); a no-op when not running."""
        proc, self._proc = self._proc, None
        _end(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_up(self) -> bool:
        """Poll the server until it answers; False when it exits or the deadline passes."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1.0):
                    return True
            except urllib.error.HTTPError:
                return True  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace")


#: Headers that belong to one hop and are not forwarded.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade"})
#: The headers an S3-compatible store without conditional writes would ignore.
_CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-match"})


class S3Proxy:
    """A loopback proxy to an S3 server that can play a worse store than moto.

    Args:
        target: the endpoint to forward to, e.g. ``S3Server.endpoint``.
        drop_conditional: drop ``If-None-Match`` and ``If-Match`` from every request, as a
            store that ignores conditional writes would.

    Attributes:
        fail_with: when set, every request is answered with this HTTP status and an S3 error
            body instead of being forwarded (403 is not retried by object_store, so a client
            sees the failure at once).
        dropped: the conditional headers dropped so far, as ``"METHOD header"`` strings, so a
            test can show that its requests did carry them.
    """

    def __init__(self, target: str, *, drop_conditional: bool = False) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 80
        self.drop_conditional = drop_conditional
        self.fail_with: int | None = None
        self.dropped: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The proxy's URL."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S3Proxy:
        """Start serving on a free loopback port."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a no-op when not running."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _handler_for(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    """A request handler class that forwards to (or fails for) ``proxy``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test output is no place for an access log

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response_only(status)
            for name, value in headers:
                if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                    self.send_header(name, value)
            # A HEAD answer announces the length of the body it does not send.
            length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
            self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status = proxy.fail_with
            if status is not None:
                error = b"<Error><Code>AccessDenied</Code><Message>proxy says no</Message></Error>"
                self._answer(status, [("Content-Type", "application/xml")], error)
                return
            conn = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=30)
            try:
                # The original Host goes through as it is: path-style requests do not depend
                # on it and moto does not check the signature that covers it.
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    lower = name.lower()
                    if proxy.drop_conditional and lower in _CONDITIONAL_HEADERS:
                        proxy.dropped.append(f"{self.command} {lower}")
                    elif lower not in _HOP_HEADERS and lower != "content-length":
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
                self._answer(response.status, response.getheaders(), data)
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

    return Handler


class VirtualHostProxy:
    """A loopback HTTP forward proxy, in a child process, serving virtual-hosted S3 from moto.

    A client configured with ``proxy_url`` (object_store) or ``proxy_options`` (pyarrow) sends
    it absolute-form requests such as
    ``GET http://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/jobs/_lock``, for hosts
    that do not resolve here. The proxy records each request, then forwards it path-style to
    the server (``/examplebucket-1250000000/jobs/_lock``, the bucket being the first label of
    the host) and returns the server's answer. Moto does not verify signatures, so a request
    signed for the virtual host still works. Only ``http://`` targets can be served: an
    ``https://`` endpoint would reach the proxy as a ``CONNECT`` tunnel, which is recorded and
    refused with 501.

    It runs in a child process, like moto itself: deltalake's ``DeltaTable.history()`` and
    ``repair()`` block while holding the GIL, so a proxy thread in the test process would not
    answer them until their requests time out. The child appends each request to a JSON-lines
    file before forwarding it, so a request the client got an answer to is always recorded.

    Args:
        target: the endpoint to forward to, e.g. ``S3Server.endpoint``.

    Example:
        >>> with VirtualHostProxy(s3.endpoint) as proxy:  # doctest: +SKIP
        ...     options = {"endpoint": "http://b-1250000000.cos.ap-guangzhou.myqcloud.com",
        ...                "allow_http": "true", "proxy_url": proxy.url}
    """

    class Request:
        """One request as the proxy received it.

        Attributes:
            method: the HTTP method.
            url: the request target, an absolute URL for a proxied request.
            host: the ``Host`` header.
            headers: every header, names in lower case.
        """

        def __init__(self, method: str, url: str, host: str, headers: Mapping[str, str]) -> None:
            self.method = method
            self.url = url
            self.host = host
            self.headers = dict(headers)

        def __repr__(self) -> str:  # no headers: a failing assert must not print a token
            return f"Request({self.method} {self.url} Host={self.host})"

        @property
        def authorization(self) -> str | None:
            """The ``Authorization`` header (the signature), if any."""
            return self.headers.get("authorization")

        @property
        def security_token(self) -> str | None:
            """The ``x-amz-security-token`` header (a session token), if any."""
            return self.headers.get("x-amz-security-token")

        @property
        def path(self) -> str:
            """The path of the URL (the object key with a leading slash)."""
            return urlsplit(self.url).path

    #: Request headers that concern the hop to the proxy, not the server behind it.
    _DROPPED = frozenset(
        {
            *_HOP_HEADERS,
            "host",
            "content-length",
            "expect",
            "proxy-connection",
            "proxy-authorization",
        }
    )

    def __init__(self, target: str) -> None:
        self.target = target
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._seen = 0  # records before this line were cleared

    @property
    def url(self) -> str:
        """The proxy's URL, for ``proxy_url``."""
        if self.port is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[VirtualHostProxy.Request]:
        """The requests received since the start (or the last :meth:`clear`), oldest first."""
        import json  # here, like boto3 above, so that importing this module stays cheap

        records = [json.loads(line) for line in self._lines()[self._seen :]]
        return [VirtualHostProxy.Request(**record) for record in records]

    def clear(self) -> None:
        """Forget the requests received so far."""
        self._seen = len(self._lines())

    def start(self) -> VirtualHostProxy:
        """Start the child and wait until it listens.

        Raises:
            RuntimeError: it exited or did not listen within ``START_TIMEOUT_S``.
        """
        if self._proc is not None:
            return self
        handle, name = tempfile.mkstemp(prefix="virtual-host-proxy-", suffix=".jsonl")
        os.close(handle)
        self._log = Path(name)
        ready = self._log.with_suffix(".port")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from s3_server import VirtualHostProxy; VirtualHostProxy._serve(*sys.argv[2:])"
        )
        here = str(Path(__file__).resolve().parent)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, here, self.target, str(self._log), str(ready)],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self._proc.poll() is None:
            if ready.exists() and ready.read_text().strip():
                self.port = int(ready.read_text())
                ready.unlink()
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"the virtual-host proxy did not start within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the child (terminate, then kill) and remove its log; a no-op when not running."""
        proc, self._proc = self._proc, None
        _end(proc)
        if self._log is not None:
            self._log.with_suffix(".port").unlink(missing_ok=True)
            self._log.unlink(missing_ok=True)
            self._log = None
        self.port = None

    def __enter__(self) -> VirtualHostProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _lines(self) -> list[str]:
        if self._log is None:
            raise RuntimeError("the proxy is not started")
        text = self._log.read_text()
        # A record is complete once its newline is written; a torn last line is not one yet.
        return text.split("\n")[:-1]

    @staticmethod
    def _serve(target: str, log: str, ready: str) -> None:
        """The child's main: serve until terminated, appending each request to ``log``."""
        import json

        parts = urlsplit(target)
        target_host, target_port = parts.hostname or "127.0.0.1", parts.port or 80
        guard = threading.Lock()
        out = open(log, "a", encoding="utf-8")  # noqa: SIM115 - open until the child dies

        def record(method: str, url: str, headers: dict[str, str]) -> None:
            line = json.dumps(
                {"method": method, "url": url, "host": headers.get("host", ""), "headers": headers}
            )
            with guard:
                out.write(line + "\n")
                out.flush()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60  # an idle keep-alive connection does not hold a thread for ever

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test output is no place for an access log

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    pieces: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(pieces)
                        pieces.append(self.rfile.read(size))
                        self.rfile.readline()  # the CRLF after each chunk
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _refuse(self, status: int, message: str) -> None:
                data = message.encode()
                self.send_response_only(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def _forward(self) -> None:
                body = self._read_body()
                headers = {name.lower(): value for name, value in self.headers.items()}
                record(self.command, self.path, headers)
                url = urlsplit(self.path)
                if self.command == "CONNECT" or url.scheme != "http" or not url.hostname:
                    self._refuse(501, f"this proxy forwards absolute http:// URLs, not {self.path}")
                    return
                bucket = url.hostname.split(".", 1)[0]
                path = f"/{bucket}{url.path}" if url.path not in ("", "/") else f"/{bucket}"
                if url.query:
                    path = f"{path}?{url.query}"
                conn = http.client.HTTPConnection(target_host, target_port, timeout=30)
                try:
                    conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
                    # moto takes the bucket from a Host it does not know, so it gets its own.
                    conn.putheader("Host", f"{target_host}:{target_port}")
                    for name, value in self.headers.items():
                        if name.lower() not in VirtualHostProxy._DROPPED:
                            conn.putheader(name, value)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    response = conn.getresponse()
                    data = response.read()  # http.client undoes chunking and knows HEAD has none
                    self.send_response_only(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                            self.send_header(name, value)
                    # A HEAD answer announces the length of the body it does not send.
                    length = response.getheader("Content-Length", "0")
                    self.send_header(
                        "Content-Length", length if self.command == "HEAD" else str(len(data))
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_CONNECT = _forward  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        # Written whole, then renamed: the parent never reads half a port number.
        partial = f"{ready}.partial"
        Path(partial).write_text(str(server.server_address[1]))
        os.replace(partial, ready)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.serve_forever()
