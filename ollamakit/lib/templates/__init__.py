"""Ollama prompt templates: a Go text/template interpreter, Ollama's prompt building on top of
it, the chat families detected in GGUF files, and sandboxed rendering of GGUF Jinja templates.

A library the API and the scheduler call; it registers no hooks.
"""

from .detect import detect_template
from .executor import TemplateExecutionError
from .families import FAMILIES, Family
from .jinja import ChatTemplateError, jinja_capabilities, render_jinja
from .prompt import (
    IMAGE_TOKENS,
    Prompt,
    collate,
    execute,
    fit_messages,
    generate_messages,
    render_chat,
    render_fim,
    render_generate,
    render_with,
    tag_images,
    think_values,
)
from .template import DEFAULT_TEMPLATE, Template, parse_template, template_capabilities
from .convert import property_value, tool_value
from .values import format_v, to_json

__all__ = [
    "parse_template",
    "detect_template",
    "template_capabilities",
    "jinja_capabilities",
    "Template",
    "DEFAULT_TEMPLATE",
    "TemplateExecutionError",
    "ChatTemplateError",
    "FAMILIES",
    "Family",
    "execute",
    "render_chat",
    "render_generate",
    "render_fim",
    "render_with",
    "render_jinja",
    "Prompt",
    "collate",
    "tag_images",
    "fit_messages",
    "generate_messages",
    "think_values",
    "IMAGE_TOKENS",
    # Go's encoding/json and fmt, and a tool as Go's structs hold it: for renderers written in code
    "to_json",
    "format_v",
    "property_value",
    "tool_value",
]
