#!/usr/bin/env python3
"""A minimal escalation webhook receiver for the scenario
of docs/records.md.

Verifies each event's X-Stagegate-Signature (HMAC-SHA256 over "<t>.<body>"
with the shared secret), ignores an event id it has already seen (the
service delivers at least once), and prints one JSON line per new event.

    python3 receiver.py PORT SECRET [PORT_FILE]

PORT 0 takes any free port; with PORT_FILE the port listened on is written
there once the receiver accepts connections.
"""
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, SECRET = int(sys.argv[1]), sys.argv[2].encode()
seen = set()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sig = self.headers.get("X-Stagegate-Signature", "")
        fields = dict(part.split("=", 1) for part in sig.split(",") if "=" in part)
        expected = hmac.new(SECRET, fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("v1", "")):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            print(json.dumps(event), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", PORT), Handler)
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        f.write(str(server.server_address[1]))
server.serve_forever()
