"""HTTP plumbing: the threading server, body reading, fault application and answer writing, routing."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..clock import DEFAULT_CLOCK
from .answers import Answer, Refusal, error_answer
from .contract import CREDITS_PATH, KEY_HEADER, MAX_BODY_BYTES, QUERY_PATH, SUBMIT_PATH, TIMELINE_PATH
from .faults import Fault
from .multipart import SubmitRequest, parse_multipart

if TYPE_CHECKING:
    from .endpoints import EmulatorEndpoints


class EmulatorHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its emulator and can close its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: EmulatorEndpoints,
    ):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away (timeouts, dropped connections): nothing to report
        super().handle_error(request, client_address)


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    """Shared plumbing: body reading, fault application, answer writing."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    server: EmulatorHttpServer

    @property
    def emulator(self) -> EmulatorEndpoints:
        return self.server.emulator

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.log is not None:
            self.emulator.log(f"{self.address_string()} {format % args}")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(10)

    def respond(self, endpoint: str, process: Callable[[], Answer]) -> None:
        """Apply the armed faults around `process` (see FaultPlan) and send what is left."""
        plan = self.emulator.faults
        slow = plan.take("slow", endpoint)
        delay = slow.seconds if slow else 0.0
        drop = plan.take("drop", endpoint)
        if drop is not None and not drop.after_processing:
            self._pause(delay)
            self.close_connection = True
            return
        answer = self.early_fault(endpoint) or self._safely(process)
        if drop is not None:
            self._pause(delay)
            if endpoint == "submit":
                self.close_connection = True
            else:
                self.send_answer(answer, partial=True)
            return
        if plan.take("malformed", endpoint) is not None:
            answer = Answer(200, answer.body[: len(answer.body) // 2], answer.content_type)
        self._pause(delay)
        self.send_answer(answer)

    def early_fault(self, endpoint: str) -> Answer | None:
        """A rate-limit or server-error fault answered before any processing."""
        plan = self.emulator.faults
        fault = plan.take("rate_limit", endpoint) if endpoint == "submit" else None
        fault = fault or plan.take("server_error", endpoint)
        if fault is None:
            return None
        answer = self.fault_answer(fault)
        if fault.retry_after is not None:
            answer.headers["Retry-After"] = f"{fault.retry_after:g}"
        return answer

    def fault_answer(self, fault: Fault) -> Answer:
        return error_answer(fault.code, "injected by the emulator", fault.status)

    def _safely(self, process: Callable[[], Answer]) -> Answer:
        try:
            return process()
        except Refusal as refusal:
            return refusal.answer()
        except Exception:
            traceback.print_exc()
            return error_answer("SERVICE_INTERNAL_ERROR", "emulator bug; see its stderr")

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            DEFAULT_CLOCK.sleep(seconds)

    def send_answer(self, answer: Answer, *, partial: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if partial or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body[: len(answer.body) // 2] if partial else answer.body)
        if partial:
            self.wfile.flush()
            self.close_connection = True

    def recorded_headers(self) -> tuple[dict[str, str], bool | None]:
        """Request headers with lower-cased names and the key value replaced by whether it matched."""
        headers = {name.lower(): value for name, value in self.headers.items()}
        matched = self.emulator._key_matches(headers.get(KEY_HEADER))
        if matched is not None:
            headers[KEY_HEADER] = "<matched>" if matched else "<not matched>"
        return headers, matched

    def body_or_refuse(self) -> bytes | None:
        """The request body, or None after answering 413 to a body over MAX_BODY_BYTES."""
        try:
            return self.read_body()
        except _BodyTooLarge:
            self.close_connection = True
            self.send_answer(error_answer("ERROR_REQUEST_BODY_TOO_LARGE", "request body too large"))
            return None
        except ValueError:
            self.close_connection = True
            self.send_answer(error_answer("ERROR_PARAMETERS", "malformed chunked body"))
            return None


class ApiHandler(_Handler):
    server_version = "FaceBeautyProEmulator/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        body = self.body_or_refuse()
        if body is None:
            return
        url = urlsplit(self.path)
        key = self.headers.get(KEY_HEADER)
        emulator = self.emulator
        if (method, url.path) == ("POST", SUBMIT_PATH):
            # The task's clock starts once the upload is in: the emulator's own decoding and
            # rendering (CPU shared with the client on a small machine) must not add to T.
            received_at = emulator.time_source()
            request = self._record_submit(body)
            self.respond("submit", lambda: emulator.handle_submit(key, request, received_at=received_at))
        elif (method, url.path) == ("GET", QUERY_PATH):
            emulator._stats.bump(queries=1)
            self.respond("query", lambda: emulator.handle_query(key, url.query))
        elif (method, url.path) == ("GET", TIMELINE_PATH):  # the emulator's own, for benchmarks
            body = json.dumps(emulator.task_timeline()).encode("utf-8")
            self.send_answer(Answer(200, body, "application/json"))
        elif (method, url.path) == ("GET", CREDITS_PATH):
            emulator._stats.bump(credit_queries=1)
            self.respond("credits", lambda: emulator.handle_credits(key))
        else:
            self.send_answer(error_answer("ERROR_AI_NOT_EXISTS", f"no API at {method} {url.path}"))

    def _record_submit(self, body: bytes) -> SubmitRequest:
        content_type = self.headers.get("Content-Type", "")
        try:
            request = parse_multipart(content_type, body)
        except Exception:
            request = SubmitRequest({}, None, ())
        headers, matched = self.recorded_headers()
        image = request.image
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "key_matched": matched,
            "content_type": content_type,
            "fields": dict(request.fields),
            "part_names": list(request.part_names),
            "image_filename": image.filename if image else None,
            "image_content_type": image.content_type if image else None,
            "image_size": len(image.data) if image else None,
        }
        self.emulator._stats.bump(submits_received=1)
        self.emulator._stats.append("submit_log", entry)
        return request


class CdnHandler(_Handler):
    server_version = "EmulatorCDN/1.0"

    def do_GET(self) -> None:
        if self.body_or_refuse() is None:
            return
        headers, _ = self.recorded_headers()
        stats = self.emulator._stats
        stats.bump(downloads=1)
        stats.append("cdn_request_headers", headers)
        path = urlsplit(self.path).path
        self.respond("download", lambda: self.emulator.handle_download(path))
        self.emulator.note_download_sent(path)

    def fault_answer(self, fault: Fault) -> Answer:
        text = f"{fault.status} injected CDN error ({fault.code})\n"
        return Answer(fault.status, text.encode("utf-8"), "text/plain; charset=utf-8")
