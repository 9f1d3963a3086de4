"""The safetensors model source: an uploaded Hugging Face folder becomes one GGUF model layer.

Every input is checked (paths, blobs, JSON, safetensors headers, the architecture, tensor
shapes, the tokenizer) before the first status line, so a bad folder is a plain 400 and the
store is left as it was.
"""

from __future__ import annotations

from ollamakit import manifest as mf
from ollamakit.errors import BadRequest
from ollamakit.interfaces import ModelSource

from .convert import plan_conversion
from .folder import ModelFolder


def claims(request) -> bool:
    return any(key.lower().endswith(".safetensors") for key in request.files)


class SafetensorsSource(ModelSource):
    def __init__(self, files: dict[str, str], target: str = "model"):
        self.files = files
        self.target = target

    def build(self, ctx):
        from ollamakit_gguf.source import read_header

        if self.target != "model":
            raise BadRequest(f"safetensors {self.target}s are not supported; convert the {self.target} to GGUF first")
        paths = {}
        for key, digest in sorted(self.files.items()):
            ctx.blob_size(digest, key)  # a missing upload is a 400 naming the file
            paths[key] = ctx.store.blob_path(digest)
        output = ctx.store.scratch_file(".gguf")
        try:
            with ModelFolder(paths) as folder:
                plan = plan_conversion(folder, ctx.request.name.model)
                parameters = plan.arch.parameters()
                yield {"status": "converting model"}
                plan.write(output)
            gguf = read_header(output, "converted model")
            digest, _, new = ctx.store_file(output)
        finally:
            output.unlink(missing_ok=True)
        status = f"{'creating new' if new else 'using existing'} layer {digest}"
        ctx.add_blob(mf.MODEL, digest, gguf=gguf, status=status)
        if parameters:  # the request's own parameters are laid over these
            ctx.add_bytes(mf.PARAMS, (mf.go_json(dict(sorted(parameters.items()))) + "\n").encode())
