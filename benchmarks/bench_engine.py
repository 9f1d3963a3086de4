"""Engine speed on the CPU: our numpy engine beside llama.cpp, same machine, same run.

    .venv/bin/python benchmarks/bench_engine.py                 # both real models
    .venv/bin/python benchmarks/bench_engine.py --models smollm2 --prompt 512 --decode 128

For each model it prints prefill tokens/s (one prompt of --prompt tokens), single-stream decode
tokens/s (--decode greedy steps, both after that prompt and from a single token, the way
llama-bench's ``tg128`` measures generation), aggregate decode of --streams concurrent sequences, resident
memory, and the numpy roofline: the float32 bytes of weights one decode step must read, over the
matrix-vector bandwidth measured here, with our decode as a fraction of it.

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


def decode_contexts(prompt) -> dict:
    """What single-stream decode starts from: the whole prompt (attention then reads a 512-token
    cache at every step), and one token, as llama-bench's ``tg128`` measures generation."""
    return {"decode": prompt, "decode_fresh": prompt[:1]}


def bench_ours(path, args, prompt):
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    options = {"numerics": args.numerics, "num_thread": args.num_thread}
    runner = load_runner(path, NumpyBackend(), options, with_tokenizer=False)
    load_s = time.perf_counter() - start
    result = {"load_s": load_s}

    def prefill():
        runner.forward([(runner.new_cache(len(prompt) + args.decode + 8), prompt)])

    prefill()  # warm: page in the weights, size the buffers
    result["prefill"] = len(prompt) / best_of(args.repeats, prefill)

    def decode(context):
        cache = runner.new_cache(len(context) + args.decode + 8)
        logits = runner.forward([(cache, context)])[0]
        start = time.perf_counter()
        for _ in range(args.decode):
            logits = runner.forward([(cache, [int(np.argmax(logits))])])[0]
        return time.perf_counter() - start

    for key, context in decode_contexts(prompt).items():
        result[key] = args.decode / min(decode(context) for _ in range(args.repeats))

    def streams():
        caches = [runner.new_cache(64 + args.decode) for _ in range(args.streams)]
        short = [prompt[i * 7 : i * 7 + 32] for i in range(args.streams)]
        outs = runner.forward(list(zip(caches, short)))
        start = time.perf_counter()
        for _ in range(args.decode // 2):
            outs = runner.forward([(c, [int(np.argmax(o))]) for c, o in zip(caches, outs)])
        return time.perf_counter() - start

    result["aggregate"] = args.streams * (args.decode // 2) / min(streams() for _ in range(args.repeats))
    result["rss"] = rss_bytes() - before
    result["memory_bytes"] = runner.memory_bytes
    result["decode_bytes"] = decode_bytes(runner)
    runner.close()
    del runner
    gc.collect()
    return result


def bench_llamacpp(path, args, prompt):
    try:
        import llama_cpp
        from llama_cpp import Llama
    except ImportError:
        return None
    gc.collect()
    before = rss_bytes()
    llm = Llama(str(path), n_ctx=len(prompt) + args.decode + 8, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, flash_attn=False, verbose=False)
    result = {}
    vocab = llm.n_vocab()

    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))

    def prefill():
        llm.reset()
        llm.eval(prompt)

    prefill()
    result["prefill"] = len(prompt) / best_of(args.repeats, prefill)

    def decode(context):
        llm.reset()
        llm.eval(context)
        start = time.perf_counter()
        for _ in range(args.decode):
            token = int(np.argmax(last_logits()))
            llm.eval([token])
        return time.perf_counter() - start

    for key, context in decode_contexts(prompt).items():
        result[key] = args.decode / min(decode(context) for _ in range(args.repeats))
    result["rss"] = rss_bytes() - before
    del llm
    gc.collect()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
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
        ours = bench_ours(path, args, prompt)
        bandwidth = matvec_bandwidth()  # measured right after our decode, under the same load
        theirs = None if args.no_llamacpp else bench_llamacpp(path, args, prompt)
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


if __name__ == "__main__":
    main()
