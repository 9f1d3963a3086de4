"""The safetensors model source: an uploaded Hugging Face folder becomes one GGUF model layer.

Every input is checked (paths, blobs, JSON, safetensors headers, the architecture, tensor
shapes, the tokenizer) before the first status line, so a bad folder is a plain 400 and the
store is left as it was.
"""

from __future__ import annotations

from ollamakit import manifest as mf
from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.headers import require_header
from ollamakit.interfaces import ModelSource

from .adapter import plan_adapter, read_adapter
from .convert import plan_conversion
from .folder import ModelFolder


def claims(request) -> bool:
    keys = [key.lower() for key in request.files]
    return any(key.endswith(".safetensors") for key in keys) or (
        request.target == "adapter" and "adapter_model.bin" in keys
    )


class SafetensorsSource(ModelSource):
    def __init__(self, files: dict[str, str], target: str = "model"):
        self.files = files
        self.target = target

    def build(self, ctx):
        if self.target == "adapter":
            yield from build_adapter(ctx, self._paths(ctx))
            return
        if self.target != "model":
            raise BadRequest(
                f"safetensors {self.target}s are not supported; convert the {self.target} to GGUF first"
            )
        paths = self._paths(ctx)
        output = ctx.store.scratch_file(".gguf")
        try:
            with ModelFolder(paths) as folder:
                plan = plan_conversion(folder, ctx.request.name.model)
                parameters = plan.arch.parameters()
                yield {"status": "converting model"}
                plan.write(output)
            header = require_header(ctx.kernel, output, "converted model")
            digest, _, new = ctx.store_file(output)
        finally:
            output.unlink(missing_ok=True)
        status = f"{'creating new' if new else 'using existing'} layer {digest}"
        ctx.add_blob(mf.MODEL, digest, header=header, status=status)
        if parameters:  # the request's own parameters are laid over these
            ctx.add_bytes(mf.PARAMS, (mf.go_json(dict(sorted(parameters.items()))) + "\n").encode())

    def _paths(self, ctx) -> dict:
        paths = {}
        for key, digest in sorted(self.files.items()):
            ctx.blob_size(digest, key)  # a missing upload is a 400 naming the file
            paths[key] = ctx.store.blob_path(digest)
        return paths


def build_adapter(ctx, paths: dict):
    """A PEFT adapter folder becomes one GGUF adapter layer, converted for the model's base.

    The base is usually in by now (a parent model, a GGUF), and then every check is made before
    the first status line. A base converted from safetensors in the same request is added only
    when its conversion ends, so the adapter then waits for it behind a status line.
    """
    from ollamakit.lib.gguf import lora_pairs

    if ctx.find(mf.ADAPTER):
        raise BadRequest("only one adapter is currently supported")
    with ModelFolder(paths) as folder:
        deferred = _base(ctx) is None
        if deferred:
            read_adapter(folder)
            yield {"status": "converting adapter"}
        base = _base(ctx)
        if base is None:
            raise BadRequest(
                "a safetensors adapter is converted for its model; the model is not a GGUF"
            )
        plan = plan_adapter(folder, base)
        output = ctx.store.scratch_file(".gguf")
        try:
            plan.write(output)
            header = require_header(ctx.kernel, output, "converted adapter")
            try:
                lora_pairs(header, base)  # the engine's own check of the pair
            except InvalidModelFile as exc:
                raise InvalidModelFile(
                    f"the adapter does not fit the model: {exc.message}"
                ) from None
            digest, _, new = ctx.store_file(output)
        finally:
            output.unlink(missing_ok=True)
    status = f"{'creating new' if new else 'using existing'} layer {digest}"
    ctx.add_blob(mf.ADAPTER, digest, header=header, status=status)
    if not deferred:
        yield {"status": "converting adapter"}


def _base(ctx):
    """The model's ``ModelHeader``, once its source has added it."""
    bases = [layer.header for layer in ctx.find(mf.MODEL) if layer.header is not None]
    return bases[-1] if bases else None
