"""The Anthropic Messages API (``/v1/messages``) over ollamakit's native chat."""
