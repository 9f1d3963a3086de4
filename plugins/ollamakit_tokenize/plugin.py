"""Plugin ``tokenize``: registers ``/api/tokenize`` and ``/api/detokenize``, and llama-server's
``/tokenize`` and ``/detokenize``. The ids come from the kernel's inference service
(``ollamakit.inference.tokenize``), so this plugin needs no other plugin's code."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the routes import falcon, which the CLI does without.
DEFERRED_IMPORTS = ("ollamakit_tokenize.routes",)


@hookimpl
def register_routes(app, kernel):
    from .routes import Detokenize, Tokenize

    for prefix in ("/api", ""):
        app.add_route(f"{prefix}/tokenize", Tokenize(kernel))
        app.add_route(f"{prefix}/detokenize", Detokenize(kernel))
