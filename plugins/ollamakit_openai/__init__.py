"""The OpenAI-compatible API (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/models``): each request is translated into a native request, run by the native handler's
code, and its reply translated back, with OpenAI's error envelope."""
