"""Long contexts: prefill and decode at growing prompt lengths, our ggml engine beside llama.cpp,
and the cost of a context shift.

    .venv/bin/python benchmarks/bench_context.py                              # smollm2, 1k 4k 8k
    .venv/bin/python benchmarks/bench_context.py --models smollm2,qwen --lengths 1024,4096,8192,32768
    .venv/bin/python benchmarks/bench_context.py --caches q8_0 --plot docs/context-speed.svg
    .venv/bin/python benchmarks/bench_context.py --caches f16,q8_0 --lengths 1024,8192 --shift-ctx 0
    .venv/bin/python benchmarks/bench_context.py --models qwenshape --lengths 16384,32768 \
        --shift-ctx 0 --repeats 3        # Qwen2.5-1.5B's attention, 2 random layers: minutes

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

Piecewise and resumable (a 32k prompt on Qwen2.5 takes about half an hour per engine):
``--results FILE`` appends every measurement to FILE as it completes (a JSON list, written
atomically) and skips the ones FILE already holds (``--repeats`` of them for a model, cache type,
length and engine), so an interrupted run goes on where it stopped, and ``--engines`` picks one
engine, so each invocation can be one piece. ``--summary FILE`` measures nothing: it prints the
side-by-side table of everything in FILE (each figure the best of its runs, with the runs' load
averages) and, with ``--plot``, draws the plot from the same records. ``docs/context-speed.json``
holds the figures behind ``docs/context-speed.svg``:

    .venv/bin/python benchmarks/bench_context.py --models qwen --lengths 1024,32768 --caches f16 \
        --engines ours --repeats 1 --shift-ctx 0 --results docs/context-speed.json
    .venv/bin/python benchmarks/bench_context.py --models qwen --lengths 1024,32768 --caches f16 \
        --engines llama.cpp --repeats 1 --shift-ctx 0 --results docs/context-speed.json
    ... the same with --caches q8_0 ...
    .venv/bin/python benchmarks/bench_context.py --summary docs/context-speed.json \
        --plot docs/context-speed.svg
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

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
        "qwenshape": qwen_shape,
    }


def qwen_shape(layers: int = 2) -> str:
    """A random qwen2 model with Qwen2.5-1.5B's attention (hidden 1536, 12 query heads, 2 key
    and value heads of 128, q/k/v biases), ``layers`` blocks, an FFN of 1536 and a vocabulary
    of 20,000, quantized to Q4_K_M: at 32k nearly all of a step is attention, so a 32k prompt
    takes about two minutes per engine instead of Qwen's 30-40, with the same flash-attention
    work per layer. Built once into the test cache."""
    from ollamakit.lib.gguf.constants import ValueType
    from ollamakit.testing.gguf_factory import byte_level_vocab, make_gguf
    from ollamakit.testing.models import CACHE
    from ollamakit_quant.quantizer import quantize_file

    target = CACHE / "models" / f"qwen25-attention-shape-{layers}l-q4_k_m.gguf"
    if target.exists():
        return str(target)
    d, heads, kv_heads, head, vocab = 1536, 12, 2, 128, 20000
    rng = np.random.default_rng(0)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *byte_level_vocab()]
    tokens += [f"t{i}" for i in range(vocab - len(tokens))]
    a = "qwen2"
    metadata = {
        "general.architecture": a,
        "general.name": "qwen2.5 attention shape",
        "general.file_type": 1,
        f"{a}.block_count": layers,
        f"{a}.context_length": 32768,
        f"{a}.embedding_length": d,
        f"{a}.feed_forward_length": d,
        f"{a}.attention.head_count": heads,
        f"{a}.attention.head_count_kv": kv_heads,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.rope.freq_base": 1e6,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3] * 3 + [1] * (vocab - 3),
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.eos_token_id": 2,
        "general.quantization_version": 2,
    }
    types = {
        "tokenizer.ggml.merges": ValueType.STRING,
        "tokenizer.ggml.token_type": ValueType.INT32,
    }

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float16)

    def bias(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.1).astype(np.float32)

    tensors = {
        "token_embd.weight": weight(vocab, d),
        "output_norm.weight": np.ones(d, np.float32),
        "output.weight": weight(vocab, d),
    }
    q, kv = heads * head, kv_heads * head
    for i in range(layers):
        tensors |= {
            f"blk.{i}.attn_norm.weight": np.ones(d, np.float32),
            f"blk.{i}.attn_q.weight": weight(q, d),
            f"blk.{i}.attn_q.bias": bias(q),
            f"blk.{i}.attn_k.weight": weight(kv, d),
            f"blk.{i}.attn_k.bias": bias(kv),
            f"blk.{i}.attn_v.weight": weight(kv, d),
            f"blk.{i}.attn_v.bias": bias(kv),
            f"blk.{i}.attn_output.weight": weight(d, q),
            f"blk.{i}.ffn_norm.weight": np.ones(d, np.float32),
            f"blk.{i}.ffn_gate.weight": weight(d, d),
            f"blk.{i}.ffn_up.weight": weight(d, d),
            f"blk.{i}.ffn_down.weight": weight(d, d),
        }
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        source = make_gguf(Path(scratch) / "f16.gguf", metadata, tensors, types=types)
        quantize_file(source, Path(scratch) / "q4_k_m.gguf", "q4_K_M")
        os.replace(Path(scratch) / "q4_k_m.gguf", target)
    return str(target)


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
    """Each figure's best over ``runs`` (None where no run has it: a transcribed record)."""
    keys = ("prefill", "decode", "peak", "row") if "prefill" in runs[0] else tuple(runs[0])
    figures = {}
    for name in keys:
        values = [run[name] for run in runs if run.get(name) is not None]
        figures[name] = (min if name in ("peak", "row") else max)(values) if values else None
    return figures


# -- results: one record per measurement, kept in a file across invocations -------------------


def read_results(path: str | None) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    with open(path) as source:
        return json.load(source)["runs"]


def append_result(path: str, record: dict) -> None:
    """Add ``record`` to the file atomically: an interrupted run loses at most its own piece."""
    document = {"runs": read_results(path) + [record]}
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as out:
        json.dump(document, out, indent=1)
        out.write("\n")
    os.replace(out.name, path)


def key(record: dict) -> tuple:
    return record["model"], record["cache"], record["length"], record["engine"]


def measured(name, path, length, engine, args, cache) -> dict:
    """One measurement in its own process, as a record with what it ran on and the load."""
    load = os.getloadavg()[0]
    figures = run("plain", engine, path, length, args, cache)
    return {
        "model": name,
        "file": path.name,
        "cache": cache,
        "length": length,
        "engine": engine,
        "threads": args.threads,
        **figures,
        "load": [round(load, 2), round(os.getloadavg()[0], 2)],
        "cpu": cpu_summary(),
        "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def tables(records: list[dict]) -> dict:
    """{(model, cache): {length: {engine: best figures}}}, in the order first measured."""
    grouped: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for record in records:
        grouped[record["model"], record["cache"]][record["length"]][record["engine"]].append(record)
    return {
        group: {
            length: {engine: best(runs) for engine, runs in by_engine.items()}
            for length, by_engine in sorted(by_length.items())
        }
        for group, by_length in grouped.items()
    }


def header(name: str, file: str, cache: str) -> None:
    print(f"\n{name}: {file}, {cache} cache")
    print(f"  {'prompt':>7} | {'prefill tok/s':>24} | {'decode tok/s':>24} | {'peak MiB':>24}")
    print(
        f"  {'':>7} | {'ours':>7} {'llama':>7} {'ratio':>7} | {'ours':>7} {'llama':>7} {'ratio':>7} | {'ours':>7} {'llama':>7} {'ratio':>7}"
    )


def row(length: int, got: dict, note: str = "") -> None:
    cells = []
    for figure, scale in (("prefill", 1), ("decode", 1), ("peak", 2**20)):
        mine = got["ours"][figure] / scale if "ours" in got else float("nan")
        other = got["llama.cpp"][figure] / scale if "llama.cpp" in got else float("nan")
        cells.append(f"{mine:7.1f} {other:7.1f} {mine / other:6.2f}x")
    print(f"  {length:7d} | " + " | ".join(cells) + note, flush=True)


def series(records: list[dict], cache: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The plot's lines: each model's decode tokens/s by length, per engine, for ``cache``."""
    lines: dict = defaultdict(dict)
    for (model, kind), table in tables(records).items():
        if kind != cache:
            continue
        for engine in ("ours", "llama.cpp"):
            points = [
                (length, got[engine]["decode"]) for length, got in table.items() if engine in got
            ]
            if points:
                lines[model][engine] = points
    return dict(lines)


def summary(records: list[dict]) -> None:
    """The side-by-side table of every record, with how many runs and the loads behind each row."""
    for (model, cache), table in tables(records).items():
        file = next(r["file"] for r in records if (r["model"], r["cache"]) == (model, cache))
        header(model, file, cache)
        for length, got in table.items():
            runs = [r for r in records if key(r)[:3] == (model, cache, length)]
            counts = ", ".join(
                f"{engine} {sum(r['engine'] == engine for r in runs)}" for engine in sorted(got)
            )
            loads = [value for r in runs for value in r.get("load") or []]
            note = f"  runs: {counts}; " + (
                f"load {min(loads):.1f}-{max(loads):.1f}" if loads else "load not recorded"
            )
            if any("source" in r for r in runs):
                note += "; transcribed (its source field)"
            row(length, got, note)
        engines = sorted({engine for got in table.values() for engine in got})
        complete = [length for length, got in table.items() if set(got) == set(engines)]
        if len(complete) > 1:
            per_token(table, complete, engines)


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


def measure(name: str, path, cache: str, lengths: list[int], engines, args, records) -> dict:
    """Each length's best figures per engine, printed as a table row as they come. Runs already
    in ``records`` (from ``--results``) count and are not taken again; new ones are added to
    ``records`` and, with ``--results``, to its file as each completes."""
    header(name, path.name, cache)
    table = {}
    for length in lengths:
        for repeat in range(args.repeats):
            for engine in engines if repeat % 2 == 0 else engines[::-1]:
                wanted = (name, cache, length, engine)
                if sum(key(r) == wanted for r in records) > repeat:
                    continue
                record = measured(name, path, length, engine, args, cache)
                records.append(record)
                if args.results:
                    append_result(args.results, record)
        got = table[length] = tables([r for r in records if key(r)[:3] == (name, cache, length)])[
            name, cache
        ][length]
        row(length, got)
    return table


def per_token(table: dict, lengths: list[int], engines) -> None:
    """Peak memory per cached token: its growth from the shortest prompt to the longest."""
    low, high = min(lengths), max(lengths)
    figures = {}
    for engine in engines:
        grown = table[high][engine]["peak"] - table[low][engine]["peak"]
        figures[engine] = (grown / (high - low), table[high][engine]["row"])
    if "ours" not in figures:
        return

    def bytes_of(engine: str) -> str:
        grown, cache = figures[engine]
        return f"{grown:.0f} B" + (f" (cache {cache:.0f} B)" if cache else "")

    line = f"  peak per cached token, {low} to {high}: ours {bytes_of('ours')}"
    if "llama.cpp" in figures:
        ours, theirs = figures["ours"], figures["llama.cpp"]
        line += f", llama.cpp {bytes_of('llama.cpp')}: {ours[0] / theirs[0]:.2f}x"
        if ours[1] and theirs[1]:
            line += f" (cache {ours[1] / theirs[1]:.2f}x)"
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
    parser.add_argument(
        "--plot-cache", default="f16", help="the cache type whose decode rates the plot shows"
    )
    parser.add_argument(
        "--engines", default="ours,llama.cpp", help="engines to measure: ours, llama.cpp or both"
    )
    parser.add_argument(
        "--results", help="append each measurement to this JSON file; skip those it holds"
    )
    parser.add_argument(
        "--summary", metavar="FILE", help="measure nothing: print FILE's table (and --plot it)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shift-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(shift_worker(args) if args.shift_worker else worker(args)))
        return

    if args.summary:
        records = read_results(args.summary)
        summary(records)
        if args.plot:
            plot(args.plot, series(records, args.plot_cache))
            print(f"\nwrote {args.plot}")
        return

    engines = [engine for engine in args.engines.split(",") if engine]
    if "llama.cpp" in engines and not importlib.util.find_spec("llama_cpp"):
        engines.remove("llama.cpp")
        print("llama-cpp-python is not installed: ours alone")
    from ollamakit.lib.ggml import lib

    print(f"CPU: {cpu_summary()}; threads {args.threads}; ours on ggml {lib.load().origin}")
    print(f"load average at the start: {os.getloadavg()}")
    records = read_results(args.results)
    lengths = [int(x) for x in args.lengths.split(",")]
    for name in args.models.split(","):
        path = models()[name]()
        for cache in args.caches.split(","):
            got = measure(name, path, cache, lengths, engines, args, records)
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
    if args.plot:  # with --results, from everything the file holds
        plot(args.plot, series(records, args.plot_cache))
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
