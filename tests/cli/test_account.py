"""``signin``/``signout`` (and their hidden ``login``/``logout``): against ollamakit, which holds
no account, and against a server answering as a signed-out or signed-in Ollama does."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli


def invoke(url: str, *args: str):
    return CliRunner().invoke(build_cli(), list(args), env={"OLLAMA_HOST": url})


def test_against_ollamakit_signin_reports_no_account_and_signout_nobody(cli):
    signin = cli("signin", ok=False)
    assert signin.exit_code == 1 and signin.stderr == "Error: account unavailable\n"
    assert cli("signout").output == "You are not signed in to ollama.com\n\n"
    assert cli("logout").output == "You are not signed in to ollama.com\n\n"


@pytest.fixture
def account_server():
    """Answers ``/api/me`` and ``/api/signout`` with the status and body a test sets."""
    replies: dict[str, tuple[int, dict]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status, body = replies[self.path]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", replies
    server.shutdown()


def test_signed_out_signin_prints_the_link(account_server):
    url, replies = account_server
    replies["/api/me"] = (401, {"error": "unauthorized", "signin_url": "https://example/connect"})
    result = invoke(url, "login")
    assert result.exit_code == 0
    assert result.output == (
        "You need to be signed in to Ollama to run Cloud models.\n\n"
        "If your browser did not open, navigate to:\n    https://example/connect\n\n"
    )


def test_signed_in(account_server):
    url, replies = account_server
    replies["/api/me"] = (200, {"name": "ada"})
    replies["/api/signout"] = (200, {})
    assert invoke(url, "signin").output == "You are already signed in as user 'ada'\n\n"
    assert invoke(url, "signout").output == "You have signed out of ollama.com\n\n"


def test_the_aliases_stay_out_of_the_help():
    help_text = CliRunner().invoke(build_cli(), ["--help"]).output
    assert "  signin " in help_text and "  signout " in help_text
    assert "login" not in help_text and "logout" not in help_text
