"""The GGUF model source: uploaded ``.gguf`` blobs become model, projector, adapter or draft
layers, each checked by the strict reader before anything is written."""

from __future__ import annotations

from ollamakit import manifest as mf
from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.interfaces import ModelSource

from ollamakit.lib.gguf import GGUFFile, GGUFWriter, looks_like_gguf

from .header import GGUFHeader


def claims(request, store) -> bool:
    """Whether a request's files are GGUF: by a ``.gguf`` key, or by the magic in the blob.
    Any ``.safetensors`` key leaves the request to a safetensors source."""
    keys = [key.lower() for key in request.files]
    if not keys or any(key.endswith(".safetensors") for key in keys):
        return False
    if any(key.endswith(".gguf") for key in keys):
        return True
    return any(
        store.has_blob(d) and looks_like_gguf(store.blob_path(d)) for d in request.files.values()
    )


def read_header(path, label: str) -> GGUFHeader:
    """The header of a file a request names as GGUF."""
    if not looks_like_gguf(path):
        raise InvalidModelFile(f'supplied file "{label}" was not in GGUF format')
    try:
        with GGUFFile.open(path) as gguf:
            return GGUFHeader(gguf)
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{label}: {exc.message}") from None


def read_stored_header(store, digest: str, label: str) -> GGUFHeader:
    """The header of a stored blob a request names as GGUF, read from the blob's start only
    (by ranges from a remote store: a create does not download weights it only describes)."""
    size = store.blob_size(digest)
    with store.storage.open_blob(digest) as fh:
        if not looks_like_gguf(fh):
            raise InvalidModelFile(f'supplied file "{label}" was not in GGUF format')
        try:
            gguf = GGUFFile.read_header(fh, size)
        except InvalidModelFile as exc:
            raise InvalidModelFile(f"{label}: {exc.message}") from None
    if gguf is None:  # a header over the ranged reader's bound
        return read_header(store.blob_path(digest), label)
    return GGUFHeader(gguf)


def layer_media_type(header: GGUFHeader, target: str, label: str) -> str:
    """What a GGUF is, from ``general.type`` and its block counts (as Ollama decides)."""
    kind = header.metadata.get("general.type")
    kind = kind if isinstance(kind, str) else ""
    if target == "adapter":
        if kind and kind != "adapter":
            raise BadRequest(
                f'adapter "{label}" is not a LoRA adapter (its general.type is "{kind}")'
            )
        return mf.ADAPTER
    if target == "draft":
        if kind and kind != "model":
            raise BadRequest(f'draft "{label}" is not a model (its general.type is "{kind}")')
        return mf.DRAFT
    if kind == "adapter":
        return mf.ADAPTER
    arch = header.architecture
    blocks = header.metadata.get(f"{arch}.block_count") or 0
    vision_blocks = header.metadata.get(f"{arch}.vision.block_count") or 0
    if kind in ("projector", "mmproj") or (not blocks and vision_blocks):
        return mf.PROJECTOR
    meta = header.metadata
    if (
        arch == "clip"
        and not meta.get("clip.block_count")
        and (
            meta.get("clip.has_vision_encoder") is True
            or meta.get("clip.has_audio_encoder") is True
        )
    ):
        return mf.PROJECTOR  # a clip file with an encoder and no text blocks
    return mf.MODEL


def needs_projector_type(metadata: dict) -> bool:
    """An old LLaVA projector: a clip vision encoder that names no projector type. llama.cpp
    once assumed ``mlp`` for it and now refuses it, so Ollama writes ``mlp`` in at create."""
    return (
        metadata.get("general.architecture") == "clip"
        and metadata.get("clip.has_vision_encoder") is True
        and "clip.projector_type" not in metadata
        and "clip.vision.projector_type" not in metadata
    )


def with_projector_type(path, out, projector_type: str = "mlp"):
    """Write the GGUF at ``path`` to ``out`` with every key and tensor as it is, plus
    ``clip.projector_type``; returns the new file's header."""
    with GGUFFile.open(path) as gguf:
        writer = GGUFWriter(out, alignment=gguf.alignment)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
        writer.add("clip.projector_type", projector_type)
        for info in gguf.tensors:
            # read when written: one tensor in memory at a time
            writer.add_tensor(
                info.name,
                lambda name=info.name: gguf.raw(name).tobytes(),
                info.ggml_type,
                info.shape,
            )
        writer.write()
    return read_header(out, "projector")


class GGUFSource(ModelSource):
    def __init__(self, files: dict[str, str], target: str = "model"):
        self.files = files
        self.target = target

    def build(self, ctx):
        if self.target == "adapter" and len(self.files) > 1:
            raise BadRequest("only one adapter is currently supported")
        # Parse and add every file (``add_blob`` checks that a model can run) before the first
        # status line, so a bad file is a plain 400.
        parsed = []
        for key in sorted(self.files):
            digest = self.files[key]
            ctx.blob_size(digest, key)
            header = read_stored_header(ctx.store, digest, key)
            parsed.append((key, digest, header, layer_media_type(header, self.target, key)))
        for key, digest, header, media_type in parsed:
            if media_type == mf.ADAPTER:
                _check_adapter(ctx, header, key)
            if media_type == mf.PROJECTOR and needs_projector_type(header.metadata):
                yield {"status": "updating GGUF projector metadata"}
                digest, header = _typed_projector(ctx, digest)
            ctx.add_blob(media_type, digest, from_=key, label=key, header=header)
        for _ in parsed:
            yield {"status": "parsing GGUF"}


def _typed_projector(ctx, digest: str):
    out = ctx.store.scratch_file(".gguf")
    try:
        header = with_projector_type(ctx.store.blob_path(digest), out)
        new_digest, _, _ = ctx.store_file(out)
    finally:
        out.unlink(missing_ok=True)
    return new_digest, header


def _check_adapter(ctx, adapter: GGUFHeader, label: str) -> None:
    """An adapter must fit the model it is created with (its layers are in by now: the model's
    source runs first); checked here so that a mismatch never reaches a manifest."""
    from ollamakit.lib.gguf import lora_pairs

    if ctx.find(mf.ADAPTER):  # a parent's: the engine runs one adapter per model, as Ollama's does
        raise BadRequest("only one adapter is currently supported")
    bases = [layer.header for layer in ctx.find(mf.MODEL) if layer.header is not None]
    if not bases or not isinstance(bases[-1], GGUFHeader):
        return  # a base of another format: the engine checks the pair when it loads them
    try:
        lora_pairs(adapter.gguf, bases[-1].gguf)
    except InvalidModelFile as exc:
        raise InvalidModelFile(f'adapter "{label}" does not fit the model: {exc.message}') from None
