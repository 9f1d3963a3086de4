"""Transport ``http``: the WSGI app served by waitress."""

from __future__ import annotations

from ollamakit.interfaces import Transport

# Blobs are model files: allow request bodies of any practical size (waitress defaults to 1 GB).
MAX_BODY = 1 << 40


class WaitressTransport(Transport):
    def serve(self, app, host: str, port: int) -> None:
        import waitress

        waitress.serve(
            app,
            host=host,
            port=port,
            threads=max(8, self.kernel.settings.num_parallel * 4),
            max_request_body_size=MAX_BODY,
            # waitress holds a whole body before the app sees it; past 1 MiB it goes to a temp file.
            # Spilling early is faster for model-sized uploads than growing a 64 MiB memory buffer
            # first and copying it out (measured: 255 -> 350 MB/s for 262 MB), and uses less memory.
            inbuf_overflow=1 << 20,
            channel_timeout=600,
            # Read the socket in large pieces: blob uploads are hundreds of megabytes.
            recv_bytes=1 << 20,
            connection_limit=1000,
            ident="ollamakit",
            clear_untrusted_proxy_headers=True,
        )
