"""A tiny deterministic "model" that implements the engine's Runner API, for fast tests of
everything above the engine (scheduler, API routes, clients).

The model recites its script: byte-level tokens, and the next token is what followed the
longest recent stretch of the context in the script (the end of the script is end-of-text).
So a prompt that quotes the script's ``Q: two`` line is answered with that line's answer, and
two prompts get two different, predictable answers. Every other token gets a small
deterministic logit, so sampling options, seeds and penalties have something to act on.

Use it by registering ``FakeEngine()`` as a plugin and storing a model with
``store_fake_model``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np

from ollamakit import manifest as mf
from ollamakit.hookspecs import hookimpl
from ollamakit.interfaces import Cache, Runner

MAGIC = "ollamakit-fake-model"
BOS, EOS = 256, 257
SPECIALS = {"<|start|>": 258, "<|end|>": 259}
VOCAB = 260
PEAK = 8.0  # the recited token's lead over the others


class FakeTokenizer:
    """Byte tokens, BOS/EOS and control tokens: ``SPECIALS``, plus a model's own ``extra``
    (numbered from ``VOCAB`` on), which add no text to an answer unless preserved."""

    bos_id, eos_id, sep_id = BOS, EOS, None
    add_bos, add_eos = True, False
    eog_ids = frozenset({EOS, SPECIALS["<|end|>"]})

    def __init__(self, extra=()):
        self.specials = {**SPECIALS, **{text: VOCAB + i for i, text in enumerate(extra)}}
        self.texts = {token: text for text, token in self.specials.items()}
        self.vocab_size = VOCAB + len(extra)

    def encode(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        ids = [BOS] if add_special and self.add_bos else []
        rest = text
        while rest:
            hits = [(rest.find(s), s) for s in self.specials if parse_special and s in rest]
            if not hits:
                ids.extend(rest.encode())
                break
            at, special = min(hits)
            ids.extend(rest[:at].encode())
            ids.append(self.specials[special])
            rest = rest[at + len(special) :]
        return ids

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        if 0 <= token < 256:
            return bytes([token])
        names = {id_: text for text, id_ in SPECIALS.items()}
        return names.get(token, "").encode() if special else b""

    def decode(self, ids, special: bool = False) -> str:
        return b"".join(self.token_to_piece(i, special) for i in ids).decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        return self.texts.get(token) or self.token_to_piece(token).decode("utf-8", "replace")


class FakeCache(Cache):
    def __init__(self, num_ctx: int):
        self.num_ctx = num_ctx
        self.tokens: list[int] = []

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def truncate(self, n: int) -> None:
        del self.tokens[n:]

    def copy_prefix(self, source: Cache, n: int) -> bool:
        if not isinstance(source, FakeCache) or source.num_ctx != self.num_ctx:
            return False
        self.tokens = source.tokens[:n]
        return True


class FakeRunner(Runner):
    def __init__(self, spec: dict):
        # A model with control tokens of its own (``specials``) recites them as tokens; the
        # script is held as one character per token so that str.find matches token runs.
        extra = [str(text) for text in spec.get("specials", ())]
        self.tokenizer = FakeTokenizer(extra)
        script = spec.get("script", "")
        tokens = self.tokenizer.encode(script, False, True) if extra else script.encode()
        self.script = "".join(map(chr, tokens))
        self.recited = frozenset(range(256)) | (frozenset(self.tokenizer.texts) if extra else set())
        self.context_length = int(spec.get("context_length", 2048))
        self.memory_bytes = int(spec.get("memory_bytes", 1 << 20))
        self.step_delay = float(spec.get("step_delay", 0.0))
        self.load_delay = float(spec.get("load_delay", 0.0))
        self.endless = bool(spec.get("endless", False))  # recite forever, never end-of-text
        self.vocab_size = self.tokenizer.vocab_size
        self.forward_calls = 0
        self.batch_sizes: list[int] = []
        self.tokens_fed = 0  # every token the engine was asked to evaluate
        self.closed = False
        self._lock = threading.Lock()
        time.sleep(self.load_delay)

    def new_cache(self, num_ctx: int) -> FakeCache:
        return FakeCache(num_ctx)

    def forward(self, batch, should_stop=None):
        with self._lock:  # one forward at a time, as a real engine would be
            if self.closed:
                raise RuntimeError("runner is closed")
            self.forward_calls += 1
            self.batch_sizes.append(len(batch))
            time.sleep(self.step_delay)  # the cost of a step, whatever the batch size
            outputs = []
            for cache, tokens in batch:
                if cache.n_past + len(tokens) > cache.num_ctx:
                    raise RuntimeError(
                        f"context overflow: {cache.n_past} + {len(tokens)} > {cache.num_ctx}"
                    )
                cache.tokens.extend(tokens)
                self.tokens_fed += len(tokens)
                outputs.append(self.logits(cache.tokens))
            return outputs

    def embed(self, batch: list[list[int]]) -> list[np.ndarray]:
        """A deterministic vector per input (a hash of its tokens), one input at a time."""
        with self._lock:
            if self.closed:
                raise RuntimeError("runner is closed")
            vectors = []
            for tokens in batch:
                seed = int.from_bytes(
                    hashlib.blake2b(str(tokens).encode(), digest_size=8).digest(), "little"
                )
                vectors.append(np.random.default_rng(seed).standard_normal(8).astype(np.float32))
            return vectors

    def next_token(self, history: list[int]) -> int:
        text = "".join(chr(t) for t in history[-64:] if t in self.recited)
        for length in range(min(len(text), 24), 0, -1):
            at = self.script.find(text[-length:])
            if at >= 0:
                following = at + length
                if following < len(self.script):
                    return ord(self.script[following])
                return ord(self.script[0]) if self.endless else EOS
        return ord(self.script[0]) if self.script else EOS

    def logits(self, history: list[int]) -> np.ndarray:
        seed = int.from_bytes(
            hashlib.blake2b(bytes(str(history[-4:]), "ascii"), digest_size=8).digest(), "little"
        )
        logits = np.random.default_rng(seed).random(self.vocab_size, dtype=np.float32) * 2.0
        logits[self.next_token(history)] += PEAK
        return logits

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """A plugin whose ``load_model`` runs fake models and declines every other file."""

    def __init__(self):
        self.runners: list[FakeRunner] = []

    @hookimpl(tryfirst=True)
    def load_model(self, kernel, model, options):
        path = model.model_path
        if path is None:
            return None
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        try:
            spec = json.loads(head)
        except ValueError:
            return None
        if not isinstance(spec, dict) or spec.get("magic") != MAGIC:
            return None
        runner = FakeRunner(spec)
        runner.load_options = options
        self.runners.append(runner)
        return runner


def store_fake_model(
    kernel,
    name: str,
    script: str,
    *,
    template: str | None = None,
    system: str | None = None,
    params: dict | None = None,
    messages: list | None = None,
    **spec,
):
    """Write a fake model straight into the store (no create endpoint needed). Its file names
    it, so each name stored this way is a model file of its own, as separately made models
    are; a second name for the same file is a copy (``kernel.store.copy``)."""
    store = kernel.store
    model_bytes = json.dumps({"magic": MAGIC, "name": name, "script": script, **spec}).encode()
    config = {
        "model_format": "gguf",
        "model_family": "fake",
        "model_families": ["fake"],
        "model_type": "1K",
        "file_type": "F32",
        "architecture": "amd64",
        "os": "linux",
        "capabilities": ["completion"],
    }
    config_digest, config_size = store.add_bytes(json.dumps(config).encode())
    layers = []

    def add(media_type: str, data: bytes):
        digest, size = store.add_bytes(data)
        layers.append(mf.Layer(media_type, digest, size))

    add(mf.MODEL, model_bytes)
    if template is not None:
        add(mf.TEMPLATE, template.encode())
    if system is not None:
        add(mf.SYSTEM, system.encode())
    if params:
        add(mf.PARAMS, json.dumps(params).encode())
    if messages:
        add(mf.MESSAGES, json.dumps(messages).encode())
    from ollamakit.names import ModelName

    parsed = ModelName.parse(name)
    store.write_manifest(
        parsed, mf.Manifest(mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size), layers)
    )
    return store.get(parsed)


def fake_kernel(settings):
    """A kernel with every installed plugin plus a ``FakeEngine``; returns (kernel, engine)."""
    from ollamakit.kernel import make_kernel

    engine = FakeEngine()
    return make_kernel(settings, plugins=[engine]), engine


def serve_in_thread(kernel, threads: int = 16):
    """The full app served from this process by the kernel's transport (so a test can install
    fakes), on a free loopback port, configured as ``ollamakit serve`` configures it."""
    from ollamakit.web import create_app

    transport = kernel.hook.make_transport(kernel=kernel)
    return transport.serve_in_thread(create_app(kernel), threads=threads)
