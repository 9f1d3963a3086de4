"""A runner's eyes: the vision tower of a model with one, behind the ``vision`` contract of
``ollamakit.images`` (encode an image's bytes; the text around its rows; rows per image).

Encoded images are kept by content digest for a while, so a conversation that sends the same
picture again each turn encodes it once. The tower runs on a compute of its own (its own graph
memory, the runner's thread pool), one stage at a time, so the runner's sequences keep
decoding between an image's stages instead of waiting for the whole image.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ollamakit.errors import Cancelled, InvalidModelFile
from ollamakit.images import EncodedImage

from .vision_image import anyres_pixels, pixels
from .vision_tower import VisionTower, vision_config

log = logging.getLogger("ollamakit.vision")

KEPT_IMAGES = 16
# projectors whose image rows mtmd decodes with causal attention off (mtmd_decode_use_non_causal)
BIDIRECTIONAL = {"gemma3"}
# the text mtmd puts around an image's rows, by projector
WRAPPING = {"gemma3": ("<start_of_image>", "<end_of_image>"), "mlp": ("", "")}


class Vision:
    def __init__(self, tower: VisionTower, runner):
        self.tower = tower
        self.runner = runner
        self.begin, self.end = WRAPPING.get(tower.config.projector, ("", ""))
        self.tokens_per_image = tower.config.tokens_per_image
        self._kept: OrderedDict[str, EncodedImage] = OrderedDict()
        self._kept_lock = threading.Lock()
        from ollamakit.lib.ggml.graph import Compute

        backend = runner.backend
        self.compute = Compute(runner.lib, backend.threadpool(runner.threads), runner.threads)
        self._compute_lock = threading.Lock()  # one stage at a time: they share the compute
        self.encoded = 0  # images run through the tower (the rest came from the kept ones)
        # called before each of the tower's stages, outside every lock; a test sets it to hold an
        # encoding between two stages while it watches what else the runner does meanwhile
        self.before_stage = None

    def encode(self, data: bytes, should_stop=None) -> EncodedImage:
        """The image's embeddings; ``should_stop()`` is asked between the tower's operations,
        and True (the client left) ends the work with ``Cancelled``."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._kept_lock:
            kept = self._kept.get(digest)
            if kept is not None:
                self._kept.move_to_end(digest)
                return kept
        c = self.tower.config
        if c.pinpoints:  # LLaVA 1.6: the tiles and the overview, one after another
            tiles = anyres_pixels(data, c.image_size, c.pinpoints, c.mean, c.std)
        else:
            tiles = [pixels(data, c.image_size, c.mean, c.std, c.pad_colour, c.resample)]
        from ollamakit.lib.ggml.graph import StepAborted

        try:
            rows = [
                self.tower.encode(self.compute, tile, lambda: self._turn(should_stop))
                for tile in tiles
            ]
        except StepAborted:
            raise Cancelled("request canceled") from None
        embeddings = rows[0] if len(rows) == 1 else np.concatenate(rows)
        image = EncodedImage(digest, embeddings, self.tower.config.projector in BIDIRECTIONAL)
        with self._kept_lock:
            self.encoded += 1
            self._kept[digest] = image
            while len(self._kept) > KEPT_IMAGES:
                self._kept.popitem(last=False)
        return image

    @contextmanager
    def _turn(self, should_stop):
        """One stage of the tower on the vision's compute, stopped when ``should_stop()``."""
        if self.before_stage is not None:
            self.before_stage()
        with self._compute_lock:
            if should_stop is not None and should_stop():
                raise Cancelled("request canceled")
            self.compute.set_abort(should_stop)
            try:
                yield
            finally:
                self.compute.set_abort(None)

    def close(self) -> None:
        with self._kept_lock:
            self._kept.clear()
        with self._compute_lock:
            self.compute.close()
        self.tower.close()


def attach_vision(runner, projector_gguf=None) -> None:
    """Give ``runner`` a ``vision`` from its projector file (an mmproj GGUF) or, without one,
    from the vision tower inside its own model file; None when there is neither or the tower
    cannot be built (the reason is logged, and images to the model answer 400)."""
    from ollamakit.lib.gguf.reader import GGUFFile

    from .graph_weights import MappedWeights

    runner.vision = None
    try:
        if projector_gguf is not None:
            with GGUFFile.open(projector_gguf) as gguf:
                config = vision_config(gguf.metadata)
                weights = MappedWeights.open(gguf, runner.lib) if config else None
        else:
            config = vision_config(runner.metadata)
            weights = runner.weights if config else None
        if config is None:
            return
        tower = VisionTower(config, weights, runner.hp.n_embd, runner.lib)
    except InvalidModelFile as exc:
        log.warning("the model's images cannot be encoded: %s", exc.message)
        return
    runner.vision = Vision(tower, runner)
