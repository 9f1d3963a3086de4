"""Dump llama.cpp's intermediate tensors, to compare our ``numerics: "llama.cpp"`` op by op.

A development tool, not a test: it needs llama-cpp-python (a reference, never a dependency).
It loads a GGUF the way ``llama_cpp.Llama(path, n_ctx=1024)`` does (the settings the reference
continuations in tests/reference/llamacpp-greedy.json were made with: flash attention
off, n_batch = n_ubatch = 512, f16 K/V, CPU weight repacking on) and hooks ggml's graph-eval
callback, which hands over every intermediate tensor by name (``attn_norm-0``, ``Qcur-0``,
``kq-0``, ``ffn_out-0``, ``result_output``...) after it is computed.

    .venv/bin/python benchmarks/llamacpp_trace.py MODEL.gguf OUT.npz 504,1296,3003 --steps 2
    .venv/bin/python benchmarks/llamacpp_trace.py MODEL.gguf - 504,1296,3003 --greedy 32

``trace`` saves each captured tensor as ``<step>/<name>`` (step 0 is the prompt, then one per
decoded token) in numpy's layout (ggml's ne reversed). ``--greedy N`` prints the free-running
greedy continuation instead.
"""

from __future__ import annotations

import argparse
import ctypes
import sys

import numpy as np

GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_TYPES = {0: np.float32, 1: np.float16, 26: np.int32, 24: np.int8, 25: np.int16}


class GGMLTensor(ctypes.Structure):
    """The leading fields of ``struct ggml_tensor`` (ggml.h), enough to read a computed tensor."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
    ]


def tensor_array(t: GGMLTensor) -> np.ndarray | None:
    """A copy of a host tensor's values, shaped (ne3, ne2, ne1, ne0), honouring its strides."""
    dtype = GGML_TYPES.get(t.type)
    if dtype is None or not t.data:
        return None
    itemsize = np.dtype(dtype).itemsize
    ne = [int(t.ne[i]) for i in range(GGML_MAX_DIMS)]
    nb = [int(t.nb[i]) for i in range(GGML_MAX_DIMS)]
    extent = sum((n - 1) * s for n, s in zip(ne, nb)) + itemsize
    raw = (ctypes.c_char * extent).from_address(t.data)
    flat = np.frombuffer(raw, dtype=np.uint8)
    view = np.lib.stride_tricks.as_strided(
        flat.view(dtype)
        if extent % itemsize == 0
        else flat[: extent - extent % itemsize].view(dtype),
        shape=ne[::-1],
        strides=nb[::-1],
    )
    return np.array(view)


class Tracer:
    """Loads a model with the eval callback installed; ``run`` captures one decode call."""

    def __init__(self, path: str, names: set[str] | None = None, n_ctx: int = 1024):
        import llama_cpp
        from llama_cpp import _internals

        self.names = names
        self.captured: dict[str, np.ndarray] = {}
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        original = _internals.llama_cpp.llama_init_from_model

        def with_callback(model, params):
            params.cb_eval = self.callback
            params.cb_eval_user_data = None
            return original(model, params)

        _internals.llama_cpp.llama_init_from_model = with_callback
        try:
            self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, verbose=False)
        finally:
            _internals.llama_cpp.llama_init_from_model = original

    def _on_tensor(self, pointer, ask, _user):
        tensor = ctypes.cast(pointer, ctypes.POINTER(GGMLTensor)).contents
        name = tensor.name.decode(errors="replace")
        wanted = (
            self.names is None
            or name in self.names
            or name.rsplit("-", 1)[0] in self.names
        )
        if ask:
            return wanted
        if wanted:
            values = tensor_array(tensor)
            if values is not None:
                key = name
                while key in self.captured:  # the same name twice in one graph
                    key += "'"
                self.captured[key] = values
        return True

    def run(self, tokens: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Evaluate ``tokens`` after those already evaluated; the tensors and the last logits."""
        self.captured = {}
        self.llm.eval(tokens)
        logits = np.ctypeslib.as_array(
            self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)
        ).copy()
        return self.captured, logits

    def greedy(self, prompt: list[int], count: int) -> list[int]:
        self.llm.reset()
        _, logits = self.run(prompt)
        out = []
        for _ in range(count):
            out.append(int(np.argmax(logits)))
            _, logits = self.run([out[-1]])
        return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out", help="an .npz to write, or - with --greedy")
    parser.add_argument("tokens", help="prompt token ids, comma separated")
    parser.add_argument(
        "--steps",
        type=int,
        default=2,
        help="greedy decode steps to trace after the prompt",
    )
    parser.add_argument(
        "--greedy", type=int, default=0, help="print this many greedy tokens instead"
    )
    args = parser.parse_args(argv)
    prompt = [int(t) for t in args.tokens.split(",")]
    if args.greedy:
        tracer = Tracer(args.model, names=set())
        print(",".join(map(str, tracer.greedy(prompt, args.greedy))))
        return
    tracer = Tracer(args.model)
    arrays = {}
    tokens = prompt
    for step in range(args.steps + 1):
        captured, logits = tracer.run(tokens)
        arrays.update({f"{step}/{name}": value for name, value in captured.items()})
        arrays[f"{step}/tokens"] = np.asarray(tokens)
        tokens = [int(np.argmax(logits))]
    np.savez(args.out, **arrays)
    print(f"{len(arrays)} tensors to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
