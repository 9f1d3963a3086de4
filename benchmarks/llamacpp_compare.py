"""Compare ``numerics: "llama.cpp"`` with a trace of llama.cpp (``llamacpp_trace.py``), layer by layer.

A development tool, not a test. It replays the trace's tokens (the prompt, then each traced
decode step's token) through our runner and reports, per step, every layer whose attention
output (``kqv_out``), feed-forward output (``ffn_out``) or layer output (``l_out``) differs from
llama.cpp's in any bit, and whether the logits are identical.

    .venv/bin/python benchmarks/llamacpp_trace.py MODEL.gguf trace.npz 2,818,1806 --steps 2
    .venv/bin/python benchmarks/llamacpp_compare.py MODEL.gguf trace.npz
"""

from __future__ import annotations

import argparse

import numpy as np

F32 = np.float32


class Recorder:
    """Wraps a runner's ops to keep the last result of each product, norm input and attention."""

    def __init__(self, runner):
        ops, layers = runner.ops, runner.model.weights.layers
        self.layers = len(layers)
        self.names = {}
        for index, layer in enumerate(layers):
            self.names[id(layer.down)] = (index, "ffn_out")
            self.names[id(layer.attn_norm)] = (index, "input")
        self.values: dict = {}
        self._attention_calls = 0
        linear, rms_norm, attention = ops.linear, ops.rms_norm, ops.attention

        def record_linear(x, weight, out=None):
            result = linear(x, weight, out=out)
            if id(weight) in self.names:
                self.values[self.names[id(weight)]] = np.array(result)
            return result

        def record_norm(x, weight, eps, out=None):
            if id(weight) in self.names:
                self.values[self.names[id(weight)]] = np.array(x)
            return rms_norm(x, weight, eps, out=out)

        def record_attention(q, keys, values, mask, out, scale=1.0):
            result = attention(q, keys, values, mask, out, scale)
            self.values[(self._attention_calls % self.layers, "kqv_out")] = np.array(out)
            self._attention_calls += 1
            return result

        ops.linear, ops.rms_norm, ops.attention = record_linear, record_norm, record_attention

    def reset(self):
        self.values.clear()
        self._attention_calls = 0


def differs(ours, reference) -> str | None:
    """None when the last rows of ``ours`` are reference's bits, else a short description."""
    reference = np.asarray(reference, F32).reshape(-1, reference.shape[-1])
    ours = np.asarray(ours, F32).reshape(-1, reference.shape[-1])[-reference.shape[0] :]
    bad = ours.view(np.int32) != reference.view(np.int32)
    if not bad.any():
        return None
    return f"{int(bad.sum())}/{bad.size} differ, max {float(np.abs(ours - reference).max()):.3g}"


def compare(model: str, trace_path: str) -> bool:
    from ollamakit_engine import load_runner
    from ollamakit_numpy import NumpyBackend

    trace = np.load(trace_path)
    runner = load_runner(model, NumpyBackend(), {"numerics": "llama.cpp"}, with_tokenizer=False)
    recorder = Recorder(runner)
    cache = runner.new_cache(int(sum(trace[k].size for k in trace.files if k.endswith("/tokens"))) + 1)
    exact, step = True, 0
    while f"{step}/tokens" in trace.files:
        recorder.reset()
        logits = runner.forward([(cache, [int(t) for t in trace[f"{step}/tokens"]])])[0]
        for index in range(recorder.layers):
            checks = [("kqv_out", (index, "kqv_out")), ("ffn_out", (index, "ffn_out"))]
            if index + 1 < recorder.layers:
                checks.append(("l_out", (index + 1, "input")))  # the next layer's input
            for name, key in checks:
                reference = trace.get(f"{step}/{name}-{index}")
                problem = None if reference is None else differs(recorder.values[key], reference)
                if problem:
                    exact = False
                    print(f"step {step} layer {index} {name}: {problem}")
        problem = differs(logits, trace[f"{step}/result_output"])
        exact &= problem is None
        print(f"step {step}: logits {'identical' if problem is None else problem}")
        step += 1
    return exact


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("trace", help="an .npz written by llamacpp_trace.py")
    args = parser.parse_args(argv)
    raise SystemExit(0 if compare(args.model, args.trace) else 1)


if __name__ == "__main__":
    main()
