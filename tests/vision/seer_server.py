"""What the vision tests over real HTTP share: a tiny llama with a LLaVA tower, served."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace

import ollama

from ollamakit.kernel import make_kernel
from ollamakit.testing import vision as fixtures
from ollamakit.testing.gguf_factory import tiny_llama

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)
WAIT = 120  # seconds any one wait may take before a test fails instead of hanging


@contextlib.contextmanager
def serve_seer(settings, folder, slots: int):
    """``(kernel, server)``: a waitress server whose store holds ``seer``, a tiny llama
    (context 512, ChatML) with a LLaVA tower of 3 blocks (2 run) whose image takes 16 rows,
    created through the official client, with ``slots`` sequences decoding at once."""
    from ollamakit_scheduler.testing import serve_in_thread

    kernel = make_kernel(replace(settings, num_parallel=slots))
    model = tiny_llama(folder / "tiny.gguf", context_length=512, chat_template=CHATML)
    projector = fixtures.llava_mmproj(folder / "mmproj.gguf", 64)
    try:
        with serve_in_thread(kernel) as server:
            client = ollama.Client(host=server.url, timeout=WAIT)
            files = {}
            for name, path in (("tiny.gguf", model), ("mmproj.gguf", projector)):
                files[name] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
                client.create_blob(path)
            client.create(model="seer", files=files)
            yield kernel, server
    finally:
        kernel.close()
