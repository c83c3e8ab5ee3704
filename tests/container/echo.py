"""The protected application's stand-in (traefik/whoami): answers each request with its headers.
Takes whoami's `--port N`."""

import http.server
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 80
http.server.ThreadingHTTPServer(("", port), Echo).serve_forever()
