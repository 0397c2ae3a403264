"""An example Alertmanager webhook receiver: prints one line per alert of every notification.

Alertmanager POSTs a JSON document (webhook payload version 4) to the `url` of a receiver's
`webhook_configs`; alertmanager.yml sends each receiver to its own path (/finance,
/finance-critical, /platform, /platform-page), so the path says which receiver it was. Replace
this with your chat, ticketing or paging endpoint; it shows what such an endpoint gets:

    python deploy/alertmanager/webhook_receiver.py --port 8080
    POST /finance  receiver=finance status=firing alerts=1
      firing CompAuditorCommissionAtRiskGrowing [warning] team=emea class=unrecovered:
        Unrecovered commission grows fast for team emea: 17.27k USD in 24h
        runbook: https://.../deploy/README.md#compauditorcommissionatriskgrowing

The compose stack runs it as the `webhook-receiver` service (`docker compose logs -f
webhook-receiver`). Standard library only; `serve()` can also be used from Python with a
callback of your own (the end-to-end tests record the notifications that way).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Called with the request path and the decoded notification.
Handler = Callable[[str, dict[str, Any]], None]

MAX_BODY = 4 * 1024 * 1024


def describe(path: str, notification: dict[str, Any]) -> str:
    """The lines printed for one notification."""
    alerts = notification.get("alerts", [])
    lines = [f"POST {path}  receiver={notification.get('receiver')} "
             f"status={notification.get('status')} alerts={len(alerts)}"]
    for alert in alerts:
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        where = " ".join(f"{key}={labels[key]}" for key in ("team", "class", "rule", "instance")
                         if labels.get(key))
        lines.append(f"  {alert.get('status')} {labels.get('alertname')} "
                     f"[{labels.get('severity')}] {where}:")
        lines.append(f"    {annotations.get('summary', '')}")
        if annotations.get("runbook_url"):
            lines.append(f"    runbook: {annotations['runbook_url']}")
    return "\n".join(lines)


def print_notification(path: str, notification: dict[str, Any]) -> None:
    print(describe(path, notification), flush=True)


def make_server(host: str, port: int, handle: Handler = print_notification) -> ThreadingHTTPServer:
    """An HTTP server that passes every JSON POST to `handle` and answers 200 (400 if the body
    is not JSON, so Alertmanager logs the failure). GET /healthz answers 200."""

    class _Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            try:
                notification = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            handle(self.path, notification)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per alert is printed instead of an access log

    return ThreadingHTTPServer((host, port), _Receiver)


def serve_in_thread(host: str, port: int, handle: Handler) -> ThreadingHTTPServer:
    """Starts the server in a daemon thread; stop it with `.shutdown()` and `.server_close()`."""
    server = make_server(host, port, handle)
    threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port)
    print(f"listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
