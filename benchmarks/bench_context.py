"""Long contexts: prefill and decode at growing prompt lengths, our ggml engine beside llama.cpp,
and the cost of a context shift.

    .venv/bin/python benchmarks/bench_context.py                              # smollm2, 1k 4k 8k
    .venv/bin/python benchmarks/bench_context.py --models smollm2,qwen --lengths 1024,4096,8192,32768
    .venv/bin/python benchmarks/bench_context.py --caches q8_0 --plot docs/context-speed.svg
    .venv/bin/python benchmarks/bench_context.py --caches f16,q8_0 --lengths 1024,8192 --shift-ctx 0

For each model and prompt length L (random token ids, fixed seed), each engine in a fresh
process with num_ctx L + 64 + a margin and the same cache type: prefill tokens/s of the whole
prompt (in steps of 512, as both engines take it), decode tokens/s of 64 greedy steps after it,
and the peak resident memory (VmHWM). Runs alternate between the engines; each figure is the
best of --repeats.

Memory per cached token, for each cache type (``--caches``, the types ``OLLAMA_KV_CACHE_TYPE``
takes; llama.cpp gets the same ``type_k``/``type_v`` with flash attention): the growth of the
peak between the shortest and the longest prompt, divided by the tokens between them (whatever
grows with the context: the cache and the buffers sized by it), and beside it the bytes each
engine says one cached token takes (ours: the cache's size over ``num_ctx``; llama.cpp:
``llama_state_seq_get_size`` over the tokens cached, its serialised rows).

The shift: our engine with a prompt that fills num_ctx (--shift-ctx) less one position, then 64
greedy steps; each step that finds the window full drops half of what follows the first 4 tokens
(Ollama's rule, ``Sequence.shift_plan``) by moving the kept keys down and rotating them, as the
scheduler does. Its decode rate is set beside 64 steps from the same prompt length with room left.
llama-cpp-python has no context shift of its own, so this one is ours alone.

``--plot`` writes an SVG of decode tokens/s against context length for both engines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import LlamaCpp, Ours, cpu_summary, proc_status, timed_decode  # noqa: E402

DECODE = 64
MARGIN = 16
KEEP = 4  # tokens a shift keeps at the start (num_keep)
CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}


def models():
    from ollamakit.testing import models as real

    return {
        "smollm2": real.smollm2_q4_1,
        "gemma3": real.gemma3_270m,
        "qwen": real.qwen25_coder_1_5b,
    }


def feed_prompt(engine, seq, prompt):
    """The whole prompt in steps of 512 rows (llama.cpp's batch), returning the last logits."""
    logits = None
    for low in range(0, len(prompt), 512):
        logits = engine.feed(seq, prompt[low : low + 512])
    return logits


def worker(args) -> dict:
    prompt = [int(t) for t in np.random.default_rng(2).integers(200, 20000, args.length)]
    num_ctx = args.length + DECODE + MARGIN
    if args.worker == "ours":
        engine = Ours(args.path, args.threads, num_ctx, args.cache)
    else:
        engine = LlamaCpp(args.path, args.threads, num_ctx, CACHE_TYPES[args.cache])
    seq = engine.begin()
    start = time.perf_counter()
    logits = feed_prompt(engine, seq, prompt)
    result = {"prefill": args.length / (time.perf_counter() - start)}
    result["decode"] = DECODE / timed_decode(engine, seq, logits, DECODE)
    result["peak"] = proc_status("VmHWM")
    if args.worker == "ours":
        result["row"] = seq.nbytes / num_ctx
    else:
        cached = args.length + DECODE + 1
        result["row"] = engine.llama_cpp.llama_state_seq_get_size(seq.ctx, 0) / cached
    return result


def shift_worker(args) -> dict:
    """Our decode rate through a full window, and with room, from the same prompt length."""
    num_ctx = args.length
    prompt = [int(t) for t in np.random.default_rng(3).integers(200, 20000, num_ctx - 1)]
    engine = Ours(args.path, args.threads, num_ctx + DECODE + MARGIN, args.cache)
    rates = {}
    for label, window in (("room", num_ctx + DECODE + MARGIN), ("shift", num_ctx)):
        engine.num_ctx = window
        seq = engine.begin()
        logits = feed_prompt(engine, seq, prompt)
        shifts = 0
        start = time.perf_counter()
        for _ in range(DECODE):
            if seq.n_past + 1 > seq.num_ctx:
                seq.shift(KEEP, (seq.n_past - KEEP) // 2)
                shifts += 1
            logits = engine.feed(seq, [int(np.argmax(logits))])
        rates[label] = DECODE / (time.perf_counter() - start)
        rates[f"{label}_shifts"] = shifts
    return rates


def run(kind: str, engine: str, path, length: int, args, cache: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        engine,
        "--path",
        str(path),
        "--length",
        str(length),
        "--threads",
        str(args.threads),
        "--cache",
        cache,
    ]
    if kind == "shift":
        command.append("--shift-worker")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    return {
        key: (min if key in ("peak", "row") else max)(run[key] for run in runs) for key in runs[0]
    }


def plot(path: str, series: dict[str, dict[str, list[tuple[int, float]]]]) -> None:
    """A small SVG line chart: decode tokens/s (y) against context length (x, log scale)."""
    width, height, pad = 640, 360, 56
    points = [p for model in series.values() for line in model.values() for p in line]
    xs = sorted({x for x, _ in points})
    top = max(y for _, y in points) * 1.1
    lo, hi = np.log2(xs[0]), np.log2(xs[-1]) if xs[-1] > xs[0] else np.log2(xs[0]) + 1

    def at(x, y):
        return pad + (np.log2(x) - lo) / (hi - lo) * (width - 2 * pad), height - pad - y / top * (
            height - 2 * pad
        )

    colours = {"ours": "#1f77b4", "llama.cpp": "#d62728"}
    dashes = ["", "6,4", "2,3"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle">decode tokens/s after a prompt of N tokens</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
    ]
    for x in xs:
        px, _ = at(x, 0)
        parts.append(f'<text x="{px:.0f}" y="{height - pad + 16}" text-anchor="middle">{x}</text>')
    for tick in np.linspace(0, top, 5)[1:]:
        _, py = at(xs[0], tick)
        parts.append(f'<text x="{pad - 6}" y="{py:.0f}" text-anchor="end">{tick:.0f}</text>')
    legend_y = pad
    for index, (model, lines) in enumerate(series.items()):
        for engine, line in lines.items():
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in (at(x, y) for x, y in line))
            dash = dashes[index % len(dashes)]
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colours[engine]}" stroke-width="2" stroke-dasharray="{dash}"/>'
            )
            parts.append(
                f'<line x1="{width - 200}" y1="{legend_y}" x2="{width - 170}" y2="{legend_y}" stroke="{colours[engine]}" stroke-width="2" stroke-dasharray="{dash}"/>'
            )
            parts.append(f'<text x="{width - 164}" y="{legend_y + 4}">{model}, {engine}</text>')
            legend_y += 16
    parts.append("</svg>")
    with open(path, "w") as out:
        out.write("\n".join(parts) + "\n")


def measure(name: str, path, cache: str, lengths: list[int], engines, args) -> dict:
    """Each length's best figures per engine, printed as a table row as they come."""
    print(f"\n{name}: {path.name}, {cache} cache")
    print(f"  {'prompt':>7} | {'prefill tok/s':>24} | {'decode tok/s':>24} | {'peak MiB':>24}")
    print(
        f"  {'':>7} | {'ours':>7} {'llama':>7} {'ratio':>7} | {'ours':>7} {'llama':>7} {'ratio':>7} | {'ours':>7} {'llama':>7} {'ratio':>7}"
    )
    table = {}
    for length in lengths:
        runs: dict[str, list[dict]] = {engine: [] for engine in engines}
        for repeat in range(args.repeats):
            for engine in engines if repeat % 2 == 0 else engines[::-1]:
                runs[engine].append(run("plain", engine, path, length, args, cache))
        got = table[length] = {engine: best(found) for engine, found in runs.items()}
        cells = []
        for key, scale in (("prefill", 1), ("decode", 1), ("peak", 2**20)):
            mine = got["ours"][key] / scale
            other = got["llama.cpp"][key] / scale if "llama.cpp" in got else float("nan")
            cells.append(f"{mine:7.1f} {other:7.1f} {mine / other:6.2f}x")
        print(f"  {length:7d} | " + " | ".join(cells), flush=True)
    return table


def per_token(table: dict, lengths: list[int], engines) -> None:
    """Peak memory per cached token: its growth from the shortest prompt to the longest."""
    low, high = min(lengths), max(lengths)
    figures = {}
    for engine in engines:
        grown = table[high][engine]["peak"] - table[low][engine]["peak"]
        figures[engine] = (grown / (high - low), table[high][engine]["row"])
    ours = figures["ours"]
    line = f"  peak per cached token, {low} to {high}: ours {ours[0]:.0f} B (cache {ours[1]:.0f} B)"
    if "llama.cpp" in figures:
        theirs = figures["llama.cpp"]
        line += (
            f", llama.cpp {theirs[0]:.0f} B (cache {theirs[1]:.0f} B): "
            f"{ours[0] / theirs[0]:.2f}x (cache {ours[1] / theirs[1]:.2f}x)"
        )
    print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2")
    parser.add_argument("--lengths", default="1024,4096,8192")
    parser.add_argument(
        "--shift-ctx", type=int, default=4096, help="num_ctx of the shift measurement (0: skip)"
    )
    parser.add_argument(
        "--caches", default="f16", help=f"cache types, comma-separated: {', '.join(CACHE_TYPES)}"
    )
    parser.add_argument(
        "--cache", default="f16", choices=sorted(CACHE_TYPES), help=argparse.SUPPRESS
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", help="write an SVG of decode tokens/s against length here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shift-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(shift_worker(args) if args.shift_worker else worker(args)))
        return

    engines = ["ours", "llama.cpp"] if importlib.util.find_spec("llama_cpp") else ["ours"]
    from ollamakit.lib.ggml import lib

    print(f"CPU: {cpu_summary()}; threads {args.threads}; ours on ggml {lib.load().origin}")
    print(f"load average at the start: {os.getloadavg()}")
    series = {}
    lengths = [int(x) for x in args.lengths.split(",")]
    for name in args.models.split(","):
        path = models()[name]()
        for cache in args.caches.split(","):
            got = measure(name, path, cache, lengths, engines, args)
            if cache == args.caches.split(",")[0]:  # the plot shows the first cache type
                series[name] = {
                    engine: [(length, got[length][engine]["decode"]) for length in lengths]
                    for engine in engines
                }
            if len(lengths) > 1:
                per_token(got, lengths, engines)
        if args.shift_ctx:
            cache = args.caches.split(",")[0]
            shift = best(
                [
                    run("shift", "ours", path, args.shift_ctx, args, cache)
                    for _ in range(args.repeats)
                ]
            )
            print(
                f"  full window of {args.shift_ctx}: decode {shift['shift']:.1f} tok/s through "
                f"{shift['shift_shifts']} shift(s) against {shift['room']:.1f} with room: "
                f"{shift['shift'] / shift['room']:.2f}x",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()}")
    if args.plot:
        plot(args.plot, series)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
