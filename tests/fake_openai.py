"""A local OpenAI-compatible chat endpoint for the client tests (chat_client and its callers: translate,
generate, judge): the real HTTP path of ChatClient runs against it, with scripted statuses, headers, delays
and bodies."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """`respond(prompt, n)` returns (status, headers, content) for the n-th request (from 1); the status
    "sleep" waits `headers` seconds, then answers 200 with `content` (a slow server)."""

    def __init__(self, respond):
        self.prompts, self.auth, self.lock = [], [], threading.Lock()
        self.respond = respond
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with server.lock:
                    server.record(prompt)
                    server.auth.append(self.headers.get("Authorization"))
                    n = len(server.prompts)
                status, headers, content = server.respond(prompt, n)
                if status == "sleep":
                    time.sleep(headers)
                    status, headers = 200, {}
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def record(self, prompt: str) -> None:
        """Called under the lock for every request, before `respond`."""
        self.prompts.append(prompt)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
