"""First-party plugin: the client commands (``create``, ``list``, ``show``, ``cp``, ``rm``).

They talk to a running server over HTTP at ``OLLAMA_HOST``, exactly as ``ollama``'s do.
"""
