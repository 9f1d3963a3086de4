"""A ViT vision tower and its projector on ggml, built as llama.cpp's mtmd builds its graph:
patch embedding, learned position embeddings, pre-norm blocks (layer norm, multi-head attention
without a mask, layer norm, GELU feed-forward), the post-norm, then the projector:

- ``gemma3`` (``clip_graph_siglip``): 4x4 average pool, RMS soft-embedding norm, input projection;
- ``mlp``, LLaVA's (``clip_graph_llava``): a class embedding after the patches, every block but
  the last (or, with ``clip.vision.feature_layer``, up to the deepest layer named, the named
  layers' inputs stacked side by side), the rows from the second on, then two linear layers
  with GELU between. With grid pinpoints (LLaVA 1.6) an image is several tiles, each through
  the tower (``vision_image.anyres_tiles``); mtmd's llava graph does not use the projector's
  ``image_newline``, so neither does this one.

Two weight layouts load: llama.cpp's mmproj files (``v.patch_embd``, ``v.blk.N.ln1``...,
``mm.input_projection``; keys ``clip.vision.*``) and Ollama's gemma3 models, whose tower lives in
the model file itself (``v.patch_embedding``, ``v.blk.N.layer_norm1``...,
``mm.mm_input_projection``; keys ``gemma3.vision.*``). Which feed-forward matrix comes first is
read from its shape, not its name: older files swap the names.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.ggml import lib as L

POOL_AVG = 1  # ggml_op_pool
# Ollama's names for the same tensors (a substring each), mapped onto llama.cpp's
OLLAMA_NAMES = (
    ("v.patch_embedding", "v.patch_embd"),
    ("v.position_embedding", "v.position_embd"),
    ("v.post_layernorm", "v.post_ln"),
    (".layer_norm1", ".ln1"),
    (".layer_norm2", ".ln2"),
    (".attn_output", ".attn_out"),
    (".mlp.fc1", ".ffn_up"),
    (".mlp.fc2", ".ffn_down"),
    ("mm.mm_input_projection", "mm.input_projection"),
    ("mm.mm_soft_emb_norm", "mm.soft_emb_norm"),
)
PROJECTORS = ("gemma3", "mlp")
# mtmd's letterbox per projector: pad colour and Pillow-compatible filter
PADDING = {"gemma3": ((0, 0, 0), "bilinear"), "mlp": ((122, 116, 104), "bicubic")}


@dataclass
class VisionConfig:
    projector: str
    image_size: int
    patch_size: int
    n_embd: int
    n_head: int
    n_ff: int
    n_layer: int
    eps: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    n_merge: int
    gelu: str  # "gelu" (tanh, as gemma3's tower uses) or "quick" (x * sigmoid(1.702 x), CLIP's)
    # LLaVA 1.6's tiling resolutions (width, height), multiples of image_size; none: one tile
    pinpoints: tuple[tuple[int, int], ...] = ()
    # LLaVA's layers whose inputs feed the projector (0: the tower's input; the deepest: its
    # output); none: the output of every block but the last
    feature_layers: tuple[int, ...] = ()

    @property
    def pad_colour(self) -> tuple[int, int, int]:
        return PADDING[self.projector][0]

    @property
    def resample(self) -> str:
        return PADDING[self.projector][1]

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens_per_tile(self) -> int:
        """The rows one pass of the tower gives."""
        if self.projector == "mlp":
            return self.patches_per_side**2
        return (self.patches_per_side // self.n_merge) ** 2

    @property
    def tokens_per_image(self) -> int:
        """The most rows an image takes: one tile, or with pinpoints the largest grid's tiles
        and the overview."""
        side = self.image_size
        tiles = max(((w // side) * (h // side) + 1 for w, h in self.pinpoints), default=1)
        return tiles * self.tokens_per_tile


def vision_config(metadata: dict) -> VisionConfig | None:
    """The tower a GGUF describes: an mmproj file's ``clip.*`` keys, or the ``<arch>.vision.*``
    keys of an Ollama model; None when it has no vision tower. A projector of a kind this
    engine does not build raises ``InvalidModelFile``."""
    arch = metadata.get("general.architecture")
    if arch == "clip":
        prefix = "clip.vision."
        projector = metadata.get("clip.projector_type") or metadata.get(
            "clip.vision.projector_type"
        )
        if not metadata.get("clip.has_vision_encoder"):
            return None
        mean = metadata.get("clip.vision.image_mean")
        std = metadata.get("clip.vision.image_std")
        merge = (
            metadata.get("clip.vision.projector.scale_factor", 4) if projector == "gemma3" else 1
        )
        gelu = "gelu" if metadata.get("clip.use_gelu") else "quick"
        pinpoints = metadata.get("clip.vision.image_grid_pinpoints") if projector == "mlp" else None
        features = metadata.get("clip.vision.feature_layer") if projector == "mlp" else None
    elif f"{arch}.vision.block_count" in metadata:
        prefix = f"{arch}.vision."
        projector = arch  # Ollama keeps the tower in the model; its kind is the model's
        mean = std = (0.5, 0.5, 0.5)
        merge = 4
        gelu = "gelu"
        pinpoints = features = None
    else:
        return None
    if projector not in PROJECTORS:
        raise InvalidModelFile(f"vision projector {projector!r} is not supported")

    def need(key: str, default=None):
        value = metadata.get(prefix + key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise InvalidModelFile(f"vision projector lacks {prefix + key}")
        return value

    config = VisionConfig(
        projector=projector,
        image_size=int(need("image_size")),
        patch_size=int(need("patch_size")),
        n_embd=int(need("embedding_length")),
        n_head=int(need("attention.head_count")),
        n_ff=int(need("feed_forward_length")),
        n_layer=int(need("block_count")),
        eps=float(need("attention.layer_norm_epsilon", 1e-6)),
        mean=_triple(mean, "image_mean"),
        std=_triple(std, "image_std"),
        n_merge=int(merge),
        gelu=gelu,
    )
    config.pinpoints = _pinpoints(pinpoints, config.image_size)
    config.feature_layers = _feature_layers(features, config.n_layer)
    sides = config.patches_per_side
    if not (
        0 < config.patch_size <= config.image_size <= 4096
        and config.n_merge > 0
        and sides % config.n_merge == 0
    ):
        raise InvalidModelFile(
            "vision projector has an image size its patches and pool do not divide"
        )
    if config.n_head <= 0 or config.n_embd % config.n_head or not 0 < config.n_layer <= 256:
        raise InvalidModelFile("vision projector has an invalid head count or depth")
    return config


MAX_TILES = 64  # the most tiles one pinpoint may cut an image into


def _pinpoints(value, image_size: int) -> tuple[tuple[int, int], ...]:
    """``clip.vision.image_grid_pinpoints`` (a flat list of widths and heights) as pairs. Each
    must be a grid of whole tiles: mtmd's llava graph takes square tiles only."""
    if value is None:
        return ()
    if (
        not isinstance(value, (list, tuple))
        or not value
        or len(value) % 2
        or len(value) > 2 * MAX_TILES
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidModelFile("vision projector's image_grid_pinpoints must be pairs of sizes")
    pairs = tuple((int(value[i]), int(value[i + 1])) for i in range(0, len(value), 2))
    for width, height in pairs:
        if (
            width <= 0
            or height <= 0
            or width % image_size
            or height % image_size
            or (width // image_size) * (height // image_size) > MAX_TILES
        ):
            raise InvalidModelFile(
                f"vision projector's grid pinpoint {width}x{height} is not a grid of at most "
                f"{MAX_TILES} tiles of {image_size} pixels"
            )
    return pairs


def _feature_layers(value, n_layer: int) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= n_layer for v in value
        )
    ):
        raise InvalidModelFile(
            f"vision projector's feature_layer must name layers from 0 to {n_layer}"
        )
    return tuple(int(v) for v in value)


def _triple(value, name: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    ):
        raise InvalidModelFile(f"vision projector's {name} must be three finite numbers")
    if name == "image_std" and 0 in value:  # the pixels are divided by it
        raise InvalidModelFile("vision projector's image_std must not be zero")
    return tuple(float(v) for v in value)


def canonical(name: str) -> str:
    for ollama, ours in OLLAMA_NAMES:
        name = name.replace(ollama, ours)
    return name


@dataclass
class BlockTensors:
    ln1_w: int
    ln1_b: int | None
    q: int
    q_b: int | None
    k: int
    k_b: int | None
    v: int
    v_b: int | None
    out: int
    out_b: int | None
    ln2_w: int
    ln2_b: int | None
    up: int
    up_b: int | None
    down: int
    down_b: int | None


class VisionTower:
    """The tower's tensors (large matrices in place in the mapped file, small ones as float32
    copies) and the graph that encodes one preprocessed image."""

    def __init__(self, config: VisionConfig, weights, text_embd: int, lib):
        from ollamakit.lib.ggml.graph import Tensors, array

        self.config = config
        self.lib = lib
        self.weights = weights  # the mapping stays alive while the tower does
        names = {canonical(name): name for name in weights.infos if name.startswith(("v.", "mm."))}
        self._names = names
        c = config
        self.text_embd = text_embd
        self.n_patches = c.patches_per_side**2
        patch_width = 3 * c.patch_size * c.patch_size

        gemma3 = c.projector == "gemma3"
        self.class_embd = None
        self.n_pos = self.n_patches + (1 if "v.class_embd" in names and not gemma3 else 0)

        # float32 copies of the vectors and the position embeddings (as llama.cpp's converter
        # stores them), and gemma3's projection transposed once (as mtmd does at every encode)
        small = [
            n
            for n, real in names.items()
            if len(weights.infos[real].shape) == 1
            or n.startswith(("v.position_embd", "v.patch_embd"))
        ]
        self._owned = Tensors(lib, len(small) + 1)
        made = {}
        for name in small:
            info = weights.infos[names[name]]
            made[name] = (
                self._owned.new(L.TYPE_F32, *info.shape, name=name),
                weights.vector(names[name]),
            )
        if gemma3:
            projection = self._matrix_array("mm.input_projection.weight", (c.n_embd, text_embd))
            proj_type = L.TYPE_F16 if projection.dtype == np.float16 else L.TYPE_F32
            self.projection = self._owned.new(
                proj_type, c.n_embd, text_embd, name="mm.input_projection.t"
            )
        self._owned.allocate()
        for name, (tensor, values) in made.items():
            shape = tuple(weights.infos[names[name]].shape)[::-1]
            array(tensor, L.TYPE_F32, shape)[...] = values.reshape(shape)
        if gemma3:
            array(self.projection, proj_type, (text_embd, c.n_embd))[...] = projection.T
        self._small = {name: tensor for name, (tensor, _) in made.items()}

        patch = self._small.get("v.patch_embd.weight")
        if patch is None or tuple(weights.infos[names["v.patch_embd.weight"]].shape) != (
            c.patch_size,
            c.patch_size,
            3,
            c.n_embd,
        ):
            raise InvalidModelFile("vision projector's patch embedding has the wrong shape")
        self.patch_w = patch
        self.patch_width = patch_width
        self.patch_b = self._small.get("v.patch_embd.bias")
        position = self._info("v.position_embd.weight")
        if (
            len(position.shape) != 2
            or position.shape[0] != c.n_embd
            or position.shape[1] < self.n_pos
        ):
            raise InvalidModelFile(
                f"tensor v.position_embd.weight has shape {tuple(position.shape)}, expected ({c.n_embd}, {self.n_pos})"
            )
        self.position = self._small["v.position_embd.weight"]
        self.pre_w, self.pre_b = (
            self._small.get("v.pre_ln.weight"),
            self._small.get("v.pre_ln.bias"),
        )
        self.post_w, self.post_b = (
            self._small.get("v.post_ln.weight"),
            self._small.get("v.post_ln.bias"),
        )
        # mtmd runs every LLaVA block but the last (its feature layer is the one before), or
        # up to the deepest feature layer named
        depth = c.n_layer if gemma3 else max(c.feature_layers, default=c.n_layer - 1)
        self.blocks = [self._block(i) for i in range(depth)]
        # the projector's input: the named layers' inputs side by side, or the last output
        self.features_width = c.n_embd * max(len(c.feature_layers), 1)
        if gemma3:
            self.soft_norm = self._vector_of("mm.soft_emb_norm.weight", (c.n_embd,))
        else:
            if self.n_pos > self.n_patches:
                self.class_embd = self._vector_of("v.class_embd", (c.n_embd,))
            hidden = self._info("mm.0.weight").shape
            if len(hidden) != 2 or hidden[0] != self.features_width:
                raise InvalidModelFile("tensor mm.0.weight does not take the tower's width")
            self.mm0 = self._matrix("mm.0.weight", (self.features_width, hidden[1]))
            self.mm0_b = self._small.get("mm.0.bias")
            self.mm2 = self._matrix("mm.2.weight", (hidden[1], text_embd))
            self.mm2_b = self._small.get("mm.2.bias")

    # -- loading -------------------------------------------------------------------------------

    def _info(self, name: str):
        real = self._names.get(name)
        if real is None:
            raise InvalidModelFile(f"vision projector lacks tensor {name}")
        return self.weights.infos[real]

    def _vector_of(self, name: str, shape: tuple[int, ...]) -> int:
        info = self._info(name)
        if tuple(info.shape) != shape:
            raise InvalidModelFile(f"tensor {name} has shape {tuple(info.shape)}, expected {shape}")
        return self._small[name]

    def _matrix(self, name: str, shape: tuple[int, int]) -> int:
        info = self._info(name)
        if tuple(info.shape) != shape:
            raise InvalidModelFile(f"tensor {name} has shape {tuple(info.shape)}, expected {shape}")
        return self.weights.by_name[self._names[name]]

    def _matrix_array(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """A matrix as numpy (row-major), float16 kept as such, anything else as float32."""
        info = self._info(name)
        if tuple(info.shape) != shape[::-1]:
            raise InvalidModelFile(
                f"tensor {name} has shape {tuple(info.shape)}, expected {shape[::-1]}"
            )
        values = self.weights.vector(self._names[name]).reshape(shape)
        return (
            values.astype(np.float16) if info.ggml_type == L.TYPE_F16 else values.astype(np.float32)
        )

    def _block(self, i: int) -> BlockTensors:
        c, p = self.config, f"v.blk.{i}."
        first, second = self._info(p + "ffn_up.weight"), self._info(p + "ffn_down.weight")
        up, down = "ffn_up", "ffn_down"
        if tuple(first.shape) == (c.n_ff, c.n_embd) and tuple(second.shape) == (c.n_embd, c.n_ff):
            up, down = down, up  # named the other way round: the shapes say which is which

        def bias(name):
            return self._small.get(p + name + ".bias")

        return BlockTensors(
            ln1_w=self._vector_of(p + "ln1.weight", (c.n_embd,)),
            ln1_b=bias("ln1"),
            q=self._matrix(p + "attn_q.weight", (c.n_embd, c.n_embd)),
            q_b=bias("attn_q"),
            k=self._matrix(p + "attn_k.weight", (c.n_embd, c.n_embd)),
            k_b=bias("attn_k"),
            v=self._matrix(p + "attn_v.weight", (c.n_embd, c.n_embd)),
            v_b=bias("attn_v"),
            out=self._matrix(p + "attn_out.weight", (c.n_embd, c.n_embd)),
            out_b=bias("attn_out"),
            ln2_w=self._vector_of(p + "ln2.weight", (c.n_embd,)),
            ln2_b=bias("ln2"),
            up=self._matrix(p + up + ".weight", (c.n_embd, c.n_ff)),
            up_b=bias(up),
            down=self._matrix(p + down + ".weight", (c.n_ff, c.n_embd)),
            down_b=bias(down),
        )

    # -- the graph -----------------------------------------------------------------------------

    STAGE_NODES = 64  # the most nodes of one stage's graph (a block takes about 40)

    def patches(self, pixels: np.ndarray) -> np.ndarray:
        """The image (3, size, size) cut into patches (n_patches, 3 * patch * patch), each in
        the patch kernel's order (x fastest, then y, then channel); patches row by row."""
        c = self.config
        n, p = c.patches_per_side, c.patch_size
        grid = pixels.reshape(3, n, p, n, p).transpose(1, 3, 0, 2, 4)  # (py, px, c, ky, kx)
        return np.ascontiguousarray(grid.reshape(n * n, 3 * p * p), dtype=np.float32)

    def _embed(self, step, patches_input) -> int:
        """The patch convolution, the class embedding, the positions and the pre-norm."""
        c, op = self.config, step.op
        weight = op("reshape_2d", self.patch_w, self.patch_width, c.n_embd)
        x = op("mul_mat", weight, patches_input)  # (n_embd, n_patches): the patch convolution
        if self.patch_b is not None:
            x = op("add", x, self.patch_b)
        if self.class_embd is not None:  # after the patches, where mtmd puts it
            x = op("concat", x, op("reshape_2d", self.class_embd, c.n_embd, 1), 1)
        x = op("add", x, op("view_2d", self.position, c.n_embd, self.n_pos, c.n_embd * 4, 0))
        if self.pre_w is not None:
            x = self._layer_norm(step, x, self.pre_w, self.pre_b)
        return x

    def _block_graph(self, step, x, block: BlockTensors) -> int:
        """One pre-norm block: attention without a mask, then the GELU feed-forward."""
        c, op = self.config, step.op
        d_head = c.n_embd // c.n_head
        cur = self._layer_norm(step, x, block.ln1_w, block.ln1_b)
        q = self._linear(step, block.q, block.q_b, cur)
        k = self._linear(step, block.k, block.k_b, cur)
        v = self._linear(step, block.v, block.v_b, cur)
        q = op("permute", op("reshape_3d", q, d_head, c.n_head, self.n_pos), 0, 2, 1, 3)
        k = op(
            "cast",
            op("permute", op("reshape_3d", k, d_head, c.n_head, self.n_pos), 0, 2, 1, 3),
            L.TYPE_F16,
        )
        v = op(
            "cast",
            op("permute", op("reshape_3d", v, d_head, c.n_head, self.n_pos), 0, 2, 1, 3),
            L.TYPE_F16,
        )
        attn = op("flash_attn_ext", q, k, v, None, 1.0 / math.sqrt(d_head), 0.0, 0.0)
        step.lib.ggml_flash_attn_ext_set_prec(attn, L.PREC_F32)
        attn = op("reshape_2d", attn, c.n_embd, self.n_pos)
        x = op("add", self._linear(step, block.out, block.out_b, attn), x)
        cur = self._layer_norm(step, x, block.ln2_w, block.ln2_b)
        cur = op(
            "gelu" if c.gelu == "gelu" else "gelu_quick",
            self._linear(step, block.up, block.up_b, cur),
        )
        return op("add", self._linear(step, block.down, block.down_b, cur), x)

    def _head(self, step, x, earlier=None) -> int:
        """The post-norm and the projector, into the text model's width; ``earlier``: the
        inputs of the feature layers before the last, which go first, side by side."""
        if self.post_w is not None:
            x = self._layer_norm(step, x, self.post_w, self.post_b)
        if earlier is not None:
            x = step.op("concat", earlier, x, 0)
        return self._gemma3(step, x) if self.config.projector == "gemma3" else self._mlp(step, x)

    def _mlp(self, step, x) -> int:
        """LLaVA: the rows from the second on (mtmd's ``patches`` input, which skips the first
        when there is a class embedding), then linear, GELU, linear."""
        op, first, width = step.op, self.n_pos - self.n_patches, self.features_width
        rows = op("view_2d", x, width, self.n_patches, width * 4, first * width * 4)
        x = op("gelu", self._linear(step, self.mm0, self.mm0_b, op("cont", rows)))
        return self._linear(step, self.mm2, self.mm2_b, x)

    def _gemma3(self, step, x) -> int:
        """4x4 average pool over the patch grid, RMS norm by the soft-embedding weight (which
        already holds the +1), then the projection into the text model's width."""
        c, op = self.config, step.op
        side = c.patches_per_side
        grid = op("cont", op("transpose", x))  # (n_patches, n_embd)
        grid = op("reshape_4d", grid, side, side, c.n_embd, 1)
        pooled = op("pool_2d", grid, POOL_AVG, c.n_merge, c.n_merge, c.n_merge, c.n_merge, 0.0, 0.0)
        tokens = c.tokens_per_tile
        pooled = op("reshape_2d", pooled, tokens, c.n_embd)
        pooled = op("cont", op("transpose", pooled))  # (n_embd, tokens)
        normed = op("mul", op("rms_norm", pooled, c.eps), self.soft_norm)
        return op("mul_mat", self.projection, normed)

    @staticmethod
    def _linear(step, weight, bias, x):
        out = step.op("mul_mat", weight, x)
        return out if bias is None else step.op("add", out, bias)

    def _layer_norm(self, step, x, weight, bias):
        out = step.op("mul", step.op("norm", x, self.config.eps), weight)
        return out if bias is None else step.op("add", out, bias)

    def encode(self, compute, pixels: np.ndarray, turn=nullcontext) -> np.ndarray:
        """Image embeddings (tokens_per_tile, text width) of one preprocessed tile. The tower
        runs as a chain of graphs (the embedding, each block, the head), each inside ``turn()``:
        between them the thread pool is free, so other sequences keep decoding while an image
        is encoded. The rows between graphs are float32, as inside one graph."""
        c = self.config
        x = self._stage(compute, turn, self._embed, [self.patches(pixels)], self.n_pos, c.n_embd)
        earlier = []  # the inputs of the feature layers the blocks pass
        for layer, block in enumerate(self.blocks):
            if layer in c.feature_layers:
                earlier.append(x)
            x = self._stage(
                compute, turn, partial(self._block_graph, block=block), [x], self.n_pos, c.n_embd
            )
        inputs = [x, np.concatenate(earlier, axis=1)] if earlier else [x]
        return self._stage(compute, turn, self._head, inputs, c.tokens_per_tile, self.text_embd)

    def _stage(self, compute, turn, build, inputs: list[np.ndarray], rows: int, width: int):
        with turn():
            step = compute.step(self.STAGE_NODES)
            try:
                tensors = [step.input(values, L.TYPE_F32) for values in inputs]
                out = step.output(build(step, *tensors))
                compute.run(step)
                return compute.read(out, rows, width)
            finally:
                step.close()

    def close(self) -> None:
        self._owned.close()
