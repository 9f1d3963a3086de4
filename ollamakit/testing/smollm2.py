"""SmolLM2-135M on a running server, made through the HTTP API the way a user would make it, for
tests and benchmarks that drive real clients (ollama-js, langchain-ollama) against ``ollamakit
serve``.

SmolLM2's GGUF carries a plain ChatML template, so Ollama would give the model no ``tools``
capability and refuse every request with tools. Client suites written for models such as
llama3.1 send tools, so the models made here use ``TOOLS_TEMPLATE``: the same ChatML turns,
with the tools listed in the system turn and calls written in ``<tool_call>`` tags (the
convention of Hermes and Qwen 2.5, which small ChatML models have seen in training).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import httpx

from . import models

TOOLS_TEMPLATE = """\
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}
You can call functions. Their signatures, one JSON object a line:
<tools>
{{- range .Tools }}
{{ json .Function }}
{{- end }}
</tools>
To call one, reply with a JSON object of its name and arguments between <tool_call> tags:
<tool_call>
{"name": "a_function", "arguments": {"a_parameter": "a value"}}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}
{{- if .ToolCalls }}<tool_call>
{{- range .ToolCalls }}
{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
{{- end }}
</tool_call>
{{- end }}
{{- if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

# The same turns for the names of reasoning models (deepseek-r1, gpt-oss): ``.Thinking`` gives
# the ``thinking`` capability and earlier turns keep their thoughts in ``<think>`` tags; the
# answer is left for the model to open with ``<think>``, as deepseek-r1 does itself (SmolLM2,
# never trained to, answers plainly: its thinking stays empty, which is the model's limit).
THINKING_TOOLS_TEMPLATE = TOOLS_TEMPLATE.replace(
    """{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}""",
    """{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ .Content }}""",
)


def upload(url: str, path: Path, client: httpx.Client | None = None) -> str:
    """Upload ``path`` as a blob (``POST /api/blobs/<digest>``); return its digest."""
    client = client or httpx.Client(timeout=600)
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            sha.update(block)
    digest = "sha256:" + sha.hexdigest()
    if client.head(f"{url}/api/blobs/{digest}").status_code != 200:
        with open(path, "rb") as fh:
            reply = client.post(f"{url}/api/blobs/{digest}", content=fh)
        reply.raise_for_status()
    return digest


def create_smollm2(
    url: str, names: Iterable[str], template: str = TOOLS_TEMPLATE, parameters: dict | None = None
) -> str:
    """Create SmolLM2-135M-Instruct (Q4_1, from the package registry) on the server at ``url``
    under the first of ``names``, with ``template`` (and ``parameters``, if any), and copy it to
    the others. Returns the GGUF blob's digest."""
    first, *aliases = names
    with httpx.Client(timeout=600) as client:
        digest = upload(url, models.smollm2_q4_1(), client)
        reply = client.post(
            f"{url}/api/create",
            json={
                "model": first,
                "files": {"SmolLM2-135M-Instruct.Q4_1.gguf": digest},
                "template": template,
                "stream": False,
                **({"parameters": parameters} if parameters else {}),
            },
        )
        reply.raise_for_status()
        for alias in aliases:
            client.post(
                f"{url}/api/copy", json={"source": first, "destination": alias}
            ).raise_for_status()
    return digest


def create_thinking_names(url: str, source: str, names: Iterable[str]) -> None:
    """``names`` made from the model ``source`` with ``THINKING_TOOLS_TEMPLATE`` (no new
    blob: the weights are shared)."""
    with httpx.Client(timeout=600) as client:
        for name in names:
            client.post(
                f"{url}/api/create",
                json={
                    "model": name,
                    "from": source,
                    "template": THINKING_TOOLS_TEMPLATE,
                    "stream": False,
                },
            ).raise_for_status()
