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
            # Keep bodies up to 64 MiB in memory; bigger ones waitress spools to a temp file.
            inbuf_overflow=64 << 20,
            channel_timeout=600,
            # Read the socket in large pieces: blob uploads are hundreds of megabytes.
            recv_bytes=1 << 20,
            connection_limit=1000,
            ident="ollamakit",
            clear_untrusted_proxy_headers=True,
        )
