"""The waitress server run from a thread of this process (``WaitressTransport.serve_in_thread``):
what tests use to put the real HTTP stack in front of a kernel they hold, fakes and all."""

from __future__ import annotations

import threading

from .receive import install
from .scratch import ScratchFiles


class ServerThread:
    """The app on a real waitress server, bound at construction, served while entered."""

    def __init__(self, transport, app, host: str, port: int, threads: int):
        self.kernel = transport.kernel
        sockets: dict = {}
        self.server = transport.create_server(app, sockets, host, port, threads)
        self.scratch_files = ScratchFiles(self.kernel.store)
        install(sockets.values(), self.scratch_files)
        self.url = f"http://{host}:{self.server.effective_port}"
        self._stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._serve, name="ollamakit-test-server", daemon=True
        )

    def _serve(self):
        from waitress import wasyncore

        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, count=1)
        # Close every channel (keep-alive connections too) from the loop's own thread.
        wasyncore.close_all(self.server._map)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self.thread.join(5)
        self.server.task_dispatcher.shutdown(timeout=5)
        self.scratch_files.close_all()
