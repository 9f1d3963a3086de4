"""What a GGUF file must hold for the engine to run it, checked from its header alone.

Create asks this (hook ``check_model``) before a model is stored, so that a file whose
hyperparameters are broken or whose tensors are missing, misshapen or beyond its block count is
refused at create rather than at its first request. The tensors and shapes here are the ones the
engines read (``graph_weights.model_tensors``, ``weights.load_weights``, ``bert.BertWeights``),
in GGML order: the contiguous row length first.
"""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile

from .hparams import ARCHITECTURES, HParams, read_hparams
from .layer_tensors import possible_layer_tensors, required_layer_tensors

_BLOCK = re.compile(r"^blk\.(\d+)\.")
# Tensors converters write that no engine needs: the embedding (checked on its own) and the
# rotary tables some llama conversions keep.
_IGNORED = re.compile(r"^(token_embd\.weight|blk\.\d+\.attn_rot_embd(\.weight)?)$")

Shapes = dict[str, tuple[int, ...]]


def decoder_tensors(hp: HParams, vocab: int, names=()) -> tuple[Shapes, Shapes]:
    """(required, optional) tensors of a decoder, with their shapes, for a file holding the
    tensors ``names``: each block's come from ``layer_tensors`` (what the architecture requires,
    and what the file has of the rest)."""
    d = hp.n_embd
    names = set(names)
    required: Shapes = {"output_norm.weight": (d,)}
    optional: Shapes = {
        "output.weight": (d, vocab),
        "output.bias": (vocab,),
        "output_norm.bias": (d,),
        "rope_freqs.weight": (hp.rope_dim // 2,),
    }
    if hp.long_rope:  # LongRoPE's two factor sets, one with the other
        factors = {f"rope_factors_{n}.weight": (hp.rope_dim // 2,) for n in ("long", "short")}
        (required if names & factors.keys() else optional).update(factors)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        possible = possible_layer_tensors(hp, i)
        present = {field for field, (name, _) in possible.items() if p + name in names}
        needed = required_layer_tensors(hp, present, i)
        for field, (name, shape) in possible.items():
            (required if field in needed else optional)[p + name] = shape(hp.layer(i))
    return required, optional


def bert_tensors(p, vocab: int) -> tuple[Shapes, Shapes]:
    """The tensors a BERT encoder reads (``bert.BertWeights``), required and optional; the
    attention projections are checked apart (``_check_bert_attention``): fused or separate."""
    d, ff = p.n_embd, p.n_ff
    required: Shapes = {"token_embd_norm.weight": (d,), "token_embd_norm.bias": (d,)}
    optional: Shapes = {"cls.weight": (d, d), "cls.bias": (d,)}
    if not p.rope_base:
        required["position_embd.weight"] = (d, p.n_ctx_train)
    nomic = p.arch == "nomic-bert"
    for i in range(p.n_layer):
        b = f"blk.{i}."
        required.update(
            {
                b + "attn_output.weight": (d, d),
                b + "attn_output_norm.weight": (d,),
                b + "attn_output_norm.bias": (d,),
                b + "ffn_up.weight": (d, ff),
                b + "ffn_down.weight": (ff, d),
                b + "layer_output_norm.weight": (d,),
                b + "layer_output_norm.bias": (d,),
            }
        )
        (required if nomic else optional)[b + "ffn_gate.weight"] = (d, ff)
        biases = {b + "attn_output.bias": (d,), b + "ffn_up.bias": (ff,), b + "ffn_down.bias": (d,)}
        (optional if nomic else required).update(biases)
        optional.update({b + "attn_qkv.weight": (d, 3 * d), b + "attn_qkv.bias": (3 * d,)})
        optional.update({f"{b}attn_{x}.bias": (d,) for x in "qkv"})
    return required, optional


def _check_bert_attention(shapes: Shapes, p) -> None:
    for i in range(p.n_layer):
        b = f"blk.{i}."
        if b + "attn_qkv.weight" in shapes:
            continue
        for x in "qkv":
            name = f"{b}attn_{x}.weight"
            if name not in shapes:
                raise InvalidModelFile(f"model file lacks tensor {b}attn_qkv.weight or {name}")
            _same_shape(name, shapes[name], (p.n_embd, p.n_embd))


def check_decoder(header) -> None:
    """Raise ``InvalidModelFile`` unless the decoder engine can run ``header`` (a ``ModelHeader``)."""
    hp = read_hparams(header.metadata)
    shapes = _shapes(header)
    vocab = _embedding_rows(shapes, hp.n_embd)
    required, optional = decoder_tensors(hp, vocab, shapes)
    unknown = sorted(
        name
        for name in shapes
        if name not in required and name not in optional and not _IGNORED.match(name)
    )
    unknown = [
        name for name in unknown if not _beyond(name, hp.n_layer)
    ]  # those are refused below, as such
    towers = _tower_prefixes(header.metadata, hp.arch)
    unknown = [name for name in unknown if not name.startswith(towers)]
    if (
        unknown
    ):  # a tensor the engine would not read: a neighbouring kind of model, never half-loaded
        raise InvalidModelFile(
            f"model file has tensor {unknown[0]}, which a {hp.arch} model with these hyperparameters does not have; "
            "this kind of model is not supported"
        )
    _check(shapes, required, optional, hp.n_layer)


def check_bert(header) -> None:
    from .bert import read_params

    p = read_params(header.metadata)
    shapes = _shapes(header)
    vocab = _embedding_rows(shapes, p.n_embd)
    types = shapes.get("token_types.weight")
    if types is not None and (len(types) != 2 or types[0] != p.n_embd):
        raise InvalidModelFile(f"tensor token_types.weight is not ({p.n_embd}, types)")
    if p.pooling == "rank" and "cls.weight" not in shapes and "cls.output.weight" not in shapes:
        raise InvalidModelFile(
            "a rank model needs a classifier head (cls.weight or cls.output.weight)"
        )
    required, optional = bert_tensors(p, vocab)
    _check(shapes, required, optional, p.n_layer)
    _check_bert_attention(shapes, p)


def _tower_prefixes(metadata: dict, arch: str) -> tuple[str, ...]:
    """The tensor names of the vision or audio towers a model file holds beside its decoder,
    as Ollama's files of gemma3 and gemma4 do (``<arch>.vision.*``/``<arch>.audio.*`` keys):
    the decoder does not read them. A tower the engine builds is checked when it loads; one it
    does not leaves the model without that input, and images to it answer 400."""
    if any(f"{arch}.{kind}.block_count" in metadata for kind in ("vision", "audio")):
        return ("v.", "a.", "mm.")
    return ()


def supports_decoder(metadata: dict) -> bool:
    return metadata.get("general.architecture") in ARCHITECTURES


def _shapes(header) -> Shapes:
    return {info.name: tuple(info.shape) for info in header.tensors}


def _embedding_rows(shapes: Shapes, width: int) -> int:
    shape = _trimmed(shapes.get("token_embd.weight"), 2)
    if shape is None or len(shape) != 2 or shape[0] != width:
        raise InvalidModelFile(f"tensor token_embd.weight is missing or not ({width}, vocab)")
    return shape[1]


def _check(shapes: Shapes, required: Shapes, optional: Shapes, n_layer: int) -> None:
    for name, want in required.items():
        if name not in shapes:
            raise InvalidModelFile(f"model file lacks tensor {name}")
        _same_shape(name, shapes[name], want)
    for name, want in optional.items():
        if name in shapes:
            _same_shape(name, shapes[name], want)
    for name in shapes:
        match = _BLOCK.match(name)
        if match and int(match.group(1)) >= n_layer:
            raise InvalidModelFile(f"tensor {name} is beyond the model's block count of {n_layer}")


def _beyond(name: str, n_layer: int) -> bool:
    match = _BLOCK.match(name)
    return bool(match) and int(match.group(1)) >= n_layer


def _trimmed(shape, length: int):
    """A GGML shape without trailing ones past ``length`` dimensions (writers may add them)."""
    if shape is None:
        return None
    shape = tuple(shape)
    while len(shape) > length and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _same_shape(name: str, have: tuple[int, ...], want: tuple[int, ...]) -> None:
    if _trimmed(have, len(want)) != want:
        raise InvalidModelFile(f"tensor {name} has shape {list(have)}, expected {list(want)}")
