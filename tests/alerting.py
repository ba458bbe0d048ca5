"""Shared by the alert and sensor tests: a real local webhook receiver and a migrated database."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa



class WebhookServer:
    """An HTTP server thread on 127.0.0.1 that records every POST (path, headers, JSON body)."""

    def __init__(self, status: int = 204):
        self.requests: list[dict] = []
        received = threading.Event()
        self.received = received
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                requests.append({"path": self.path, "headers": dict(self.headers), "raw": body.decode(),
                                 "json": json.loads(body)})
                self.send_response(status)
                self.end_headers()
                received.set()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)




def alert_rows(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT action, table_name, record_id, new_values, actor_role FROM audit_logs "
            "WHERE action = 'ALERT' ORDER BY id")).all()
