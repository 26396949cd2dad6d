"""A real HTTP server on 127.0.0.1 serving a folder, with Range support and fault injection."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    cut_after: dict[str, int]  # path -> bytes to send before dropping the connection (once)
    requests: list[tuple[str, str | None]]

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.lstrip("/")
        self.requests.append((name, self.headers.get("Range")))
        f = self.root / name
        if not f.is_file():
            self.send_error(404)
            return
        data = f.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_after.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(root: Path, cut_after: dict[str, int] | None = None) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """Serve ``root`` on a free loopback port; yields ``(base_url, request_log)``."""
    handler = type("H", (_Handler,), {"root": root, "cut_after": dict(cut_after or {}), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
