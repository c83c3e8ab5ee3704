"""The protected application's stand-in (traefik/whoami): answers each request with its headers."""

import http.server


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("", 8080), Echo).serve_forever()
