"""Transport ``http``: the WSGI app served by waitress.

Blob uploads are received straight into the store's scratch folder and hashed on the way
(``receive.py``, ``scratch.py``), and each request can ask whether its client has gone
(``ollamakit.web.client_gone``); everything else is plain waitress.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from ollamakit.errors import ListenError
from ollamakit.interfaces import Transport
from ollamakit.web.auth import ApiKeys

from .receive import install
from .scratch import ScratchFiles

# Blobs are model files: allow request bodies of any practical size (waitress defaults to 1 GB).
MAX_BODY = 1 << 40
MAX_HEADER = 1 << 20
CHANNEL_TIMEOUT = 600
# Worker threads. A request waiting for a model slot holds one, so with fewer threads than
# clients, the rest (an /api/tags or /api/ps among them) wait behind them in waitress's queue.
# Idle threads cost little; past this many, requests queue as they would anyway.
THREADS = 128


class WaitressTransport(Transport):
    def serve(self, app, host: str, port: int) -> None:
        sockets: dict = {}
        try:
            # Resolved here first: waitress turns a name that does not resolve into a bare
            # "Invalid host/port specified." ValueError, which would not say why.
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            server = self.create_server(app, sockets, host, port)
        except OSError as exc:
            raise ListenError(listen_error(host, port, exc)) from None
        self.listening(host, bound_port(server, port))
        scratch_files = ScratchFiles(self.kernel.store)
        install(
            sockets.values(),
            scratch_files,
            self.kernel.settings.max_request_body,
            ApiKeys(self.kernel.settings),
        )
        server.print_listen("Serving on http://{}:{}")
        restore = _remove_uploads_on_sigterm(scratch_files, self.kernel.storage)
        try:
            server.run()
        finally:
            restore()
            scratch_files.close_all()

    def serve_in_thread(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 16):
        from .thread import ServerThread

        return ServerThread(self, app, host, port, threads)

    def create_server(self, app, sockets: dict, host: str, port: int, threads: int | None = None):
        """The waitress server, bound to its address (``serve`` runs it; tests run it in a
        thread of their own)."""
        import waitress

        return waitress.create_server(
            app,
            map=sockets,
            host=host,
            port=port,
            threads=threads or max(THREADS, 4 * self.kernel.settings.num_parallel),
            # Keep reading a connection while its request runs, so a client that closes it is
            # seen at once (waitress.client_disconnected) and its work stops; with 0, waitress
            # reads nothing more until the reply is written, and a ``stream: false`` generate
            # whose client left held its slot to the end.
            channel_request_lookahead=1,
            max_request_body_size=MAX_BODY,
            # Go's http.Server default (DefaultMaxHeaderBytes), which Ollama keeps; past it the
            # answer is 431 (receive.py closes the connection so that the client reads it).
            max_request_header_size=MAX_HEADER,
            # Bodies other than blob uploads that pass 1 MiB go to a temp file rather than
            # growing a memory buffer to 64 MiB first.
            inbuf_overflow=1 << 20,
            channel_timeout=CHANNEL_TIMEOUT,
            # Socket reads for blob uploads: 256 KiB cost the server the least CPU per upload
            # (0.42 s for 262 MB, against 0.49-0.66 s at 1 MiB, 0.53 at 4 MiB, 0.53 at 128 KiB):
            # probably because each read allocates its full size before shrinking to what came.
            recv_bytes=256 << 10,
            connection_limit=1000,
            ident="ollamakit",
            clear_untrusted_proxy_headers=True,
        )


def bound_port(server, port: int) -> int:
    """The port the server got: the one asked for, or the free one the system picked for port 0
    (``OLLAMA_HOST=127.0.0.1:0``), which is then announced as Ollama announces it."""
    if port:
        return port
    if hasattr(server, "effective_port"):  # one socket
        return int(server.effective_port)
    return int(server.effective_listen[0][1])  # a name with several addresses: one port each


def listen_error(host: str, port: int, exc: OSError) -> str:
    """Go's words for a failed listen, which Ollama prints, e.g.
    ``listen tcp 127.0.0.1:11434: bind: address already in use``."""
    reason = (exc.strerror or str(exc)).lower()  # Go spells the system's messages in lower case
    if isinstance(exc, socket.gaierror):
        return f"listen tcp: lookup {host}: {reason}"
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"listen tcp {address}: bind: {reason}"


def _remove_uploads_on_sigterm(scratch_files: ScratchFiles, storage):
    """SIGTERM ends the server at once, as before; first it removes the files of uploads in
    progress and the store's temporary folder. Returns the function that puts the previous
    handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum, frame):
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def on_sigterm(signum, frame):
        def leave():
            storage.close_at_signal()
            terminate(signum, frame)

        scratch_files.unlink_all_then(leave)

    signal.signal(signal.SIGTERM, on_sigterm)
    return lambda: signal.signal(
        signal.SIGTERM, previous if previous is not None else signal.SIG_DFL
    )
