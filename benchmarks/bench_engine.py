"""Engine speed on the CPU: our numpy engine beside llama.cpp, same machine, same run.

    .venv/bin/python benchmarks/bench_engine.py                 # both real models
    .venv/bin/python benchmarks/bench_engine.py --models smollm2 --prompt 512 --decode 128

For each model it prints prefill tokens/s (one prompt of --prompt tokens), single-stream decode
tokens/s (--decode greedy steps, both after that prompt and from a single token, the way
llama-bench's ``tg128`` measures generation), aggregate decode of --streams concurrent sequences, resident
memory, and the numpy roofline: the float32 bytes of weights one decode step must read, over the
matrix-vector bandwidth measured here, with our decode as a fraction of it. Both engines are
loaded side by side and every measurement alternates between them (best of --repeats each).

llama.cpp (``pip install llama-cpp-python``; not a project dependency) runs with n_threads
matching --threads; it is skipped when not installed. Our engine runs with its own ``num_thread``
default (--num-thread fixes it). Run on an idle machine (check ``uptime`` and ``ps``): both
sides use every core they are given, and a busy neighbour stalls threaded products.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from ollamakit.testing import models
from ollamakit_engine import load_runner
from ollamakit_numpy import NumpyBackend

MODELS = {"smollm2": models.smollm2_q4_1, "gemma3": models.gemma3_270m}


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matvec_bandwidth(megabytes: int = 256) -> float:
    """Bytes/s that ``x @ W.T`` streams through a float32 matrix far larger than the caches."""
    cols = 1024
    rows = megabytes * (1 << 20) // (4 * cols)
    weight = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
    x = np.ones((1, cols), np.float32)
    out = np.empty((1, rows), np.float32)
    np.dot(x, weight.T, out=out)
    seconds = best_of(5, lambda: np.dot(x, weight.T, out=out))
    return weight.nbytes / seconds


def decode_bytes(runner) -> int:
    """Float32 weight bytes one decode step reads: every matrix, plus one embedding row. The
    zero columns the engine may pad a matrix with (``Ops.padded_width``) are its own overhead,
    so they do not count."""
    w = runner.model.weights
    total = w.output.weight.nbytes + w.token_embd.shape[0] * 4
    for layer in w.layers:
        for linear in (layer.qkv, layer.attn_out, layer.gate_up, layer.down):
            rows, cols = linear.shape
            total += rows * cols * 4
    return total


def cache_read_bytes(runner, context: int) -> int:
    """Bytes of keys and values one decode step reads at ``context`` cached tokens (a
    sliding-window layer reads no more than its window). Not weights, so not in the roofline;
    printed beside it for decoding after a long prompt."""
    hp = runner.hp
    per_position = 4 * hp.n_head_kv * (hp.head_dim + hp.head_dim_v)
    window = hp.sliding_window or context
    return sum(per_position * (min(context, window) if local else context) for local in hp.swa_layers)


def decode_contexts(prompt) -> dict:
    """What single-stream decode starts from: the whole prompt (attention then reads a 512-token
    cache at every step), and one token, as llama-bench's ``tg128`` measures generation."""
    return {"decode": prompt, "decode_fresh": prompt[:1]}


class Ours:
    """Our engine on the numpy backend."""

    def __init__(self, path, args):
        gc.collect()
        self.rss_before = rss_bytes()
        options = {"numerics": args.numerics, "num_thread": args.num_thread}
        self.runner = load_runner(path, NumpyBackend(), options, with_tokenizer=False)
        self.extra = args.decode + 8

    def prefill(self, prompt):
        self.runner.forward([(self.runner.new_cache(len(prompt) + self.extra), prompt)])

    def decode(self, context, steps: int) -> float:
        runner = self.runner
        cache = runner.new_cache(len(context) + self.extra)
        logits = runner.forward([(cache, context)])[0]
        start = time.perf_counter()
        for _ in range(steps):
            logits = runner.forward([(cache, [int(np.argmax(logits))])])[0]
        return time.perf_counter() - start

    def streams(self, prompt, count: int, steps: int) -> float:
        runner = self.runner
        caches = [runner.new_cache(64 + steps) for _ in range(count)]
        short = [prompt[i * 7 : i * 7 + 32] for i in range(count)]
        outs = runner.forward(list(zip(caches, short)))
        start = time.perf_counter()
        for _ in range(steps):
            outs = runner.forward([(c, [int(np.argmax(o))]) for c, o in zip(caches, outs)])
        return time.perf_counter() - start

    def close(self):
        self.runner.close()
        self.runner = None
        gc.collect()


class LlamaCpp:
    """llama.cpp through llama-cpp-python, with the settings of the reference answers."""

    def __init__(self, path, args, n_ctx: int):
        import llama_cpp

        gc.collect()
        self.rss_before = rss_bytes()
        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(str(path), n_ctx=n_ctx, n_batch=512, n_threads=args.threads,
                                   n_threads_batch=args.threads, flash_attn=False, verbose=False)
        self.vocab = self.llm.n_vocab()

    def prefill(self, prompt):
        self.llm.reset()
        self.llm.eval(prompt)

    def decode(self, context, steps: int) -> float:
        llm = self.llm
        llm.reset()
        llm.eval(context)
        start = time.perf_counter()
        for _ in range(steps):
            logits = np.ctypeslib.as_array(self.llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(self.vocab,))
            llm.eval([int(np.argmax(logits))])
        return time.perf_counter() - start

    def close(self):
        del self.llm
        gc.collect()


def bench(path, args, prompt) -> tuple[dict, dict | None]:
    """Both engines loaded side by side and measured in turn, every measurement alternating
    between them, so that a change in the machine's speed during the run (on a shared VM it
    swings by a third) lands on both alike. Each figure is the best of ``--repeats``."""
    sides = {"ours": Ours(path, args)}
    sides["ours"].prefill(prompt)  # warm: page in the weights, size the buffers
    results = {"ours": {"rss": rss_bytes() - sides["ours"].rss_before}}
    if not args.no_llamacpp:
        try:
            sides["llama.cpp"] = LlamaCpp(path, args, len(prompt) + args.decode + 8)
        except ImportError:
            pass
        else:
            sides["llama.cpp"].prefill(prompt)
            results["llama.cpp"] = {"rss": rss_bytes() - sides["llama.cpp"].rss_before}
    best: dict = {}
    for _ in range(args.repeats):
        for name, side in sides.items():
            start = time.perf_counter()
            side.prefill(prompt)
            best[name, "prefill"] = min(best.get((name, "prefill"), np.inf), time.perf_counter() - start)
            for key, context in decode_contexts(prompt).items():
                best[name, key] = min(best.get((name, key), np.inf), side.decode(context, args.decode))
        seconds = sides["ours"].streams(prompt, args.streams, args.decode // 2)
        best["ours", "aggregate"] = min(best.get(("ours", "aggregate"), np.inf), seconds)
    for name, result in results.items():
        result["prefill"] = len(prompt) / best[name, "prefill"]
        for key in decode_contexts(prompt):
            result[key] = args.decode / best[name, key]
    ours = results["ours"]
    ours["aggregate"] = args.streams * (args.decode // 2) / best["ours", "aggregate"]
    ours["memory_bytes"] = sides["ours"].runner.memory_bytes
    ours["decode_bytes"] = decode_bytes(sides["ours"].runner)
    ours["cache_bytes"] = cache_read_bytes(sides["ours"].runner, len(prompt) + args.decode // 2)
    for side in sides.values():
        side.close()
    return ours, results.get("llama.cpp")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--num-thread", type=int, default=0,
                        help="our engine's num_thread (0: it chooses by measuring, see threads.py)")
    parser.add_argument("--numerics", default="float32", choices=["llama.cpp", "float32"])
    parser.add_argument("--no-llamacpp", action="store_true")
    args = parser.parse_args(argv)

    print(f"load average {os.getloadavg()[0]:.2f}; numerics {args.numerics}; {args.threads} threads")
    for name in args.models.split(","):
        path = MODELS[name]()
        prompt = [int(t) for t in np.random.default_rng(1).integers(200, 20000, args.prompt)]
        ours, theirs = bench(path, args, prompt)
        bandwidth = matvec_bandwidth()  # measured right after the decodes, under the same load
        roofline = bandwidth / ours["decode_bytes"]
        print(f"\n{name} ({path.name}); matrix-vector bandwidth {bandwidth / 1e9:.1f} GB/s")
        print(f"  {'':28}{'ollamakit':>12}{'llama.cpp':>12}{'ratio':>8}")

        def row(label, key, unit):
            mine = ours[key]
            other = theirs.get(key) if theirs else None
            ratio = f"{mine / other:7.2f}x" if other else ""
            other_text = f"{other:12.1f}" if other else f"{'-':>12}"
            print(f"  {label:28}{mine:12.1f}{other_text}{ratio}  {unit}")

        row(f"prefill ({args.prompt} tokens)", "prefill", "tokens/s")
        row(f"decode ({args.decode}, after prompt)", "decode", "tokens/s")
        row(f"decode ({args.decode}, from 1 token)", "decode_fresh", "tokens/s")
        print(f"  {f'decode, {args.streams} streams (sum)':28}{ours['aggregate']:12.1f}{'':12}"
              f"{ours['aggregate'] / ours['decode']:7.2f}x  tokens/s, vs one stream")
        print(f"  {'resident memory':28}{ours['rss'] / 2**20:12.0f}"
              f"{(theirs['rss'] / 2**20 if theirs else 0):12.0f}{'':8}  MiB (runner reports "
              f"{ours['memory_bytes'] / 2**20:.0f} MiB)")
        print(f"  numpy roofline: {ours['decode_bytes'] / 2**20:.0f} MiB of weights per token -> "
              f"{roofline:.1f} tokens/s; our decode is {ours['decode'] / roofline:.0%} of it after the "
              f"prompt, {ours['decode_fresh'] / roofline:.0%} from 1 token")
        with_cache = bandwidth / (ours["decode_bytes"] + ours["cache_bytes"])
        print(f"  after the prompt a step also reads {ours['cache_bytes'] / 2**20:.0f} MiB of keys and values "
              f"(on average); counting them, decode is {ours['decode'] / with_cache:.0%} of the bandwidth")


if __name__ == "__main__":
    main()
