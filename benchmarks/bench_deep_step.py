"""A prompt step and decode steps deep in a long context, our engine beside llama.cpp, without
the prompt that fills it.

    .venv/bin/python benchmarks/bench_deep_step.py --models qwen --depth 32192 --rounds 3
    .venv/bin/python benchmarks/bench_deep_step.py --models qwenshape,smollm2 --depth 16128

``bench_context.py`` measures a 32k prompt whole: on Qwen2.5-Coder-1.5B that is 30-40 minutes per
engine, one engine after the other, long enough for the machine's load to change between them.
This measures the steps whose cost grows with the context, at one depth, in a minute or two per
engine, so the engines can alternate round by round. Each engine's cache is made to hold
``--depth`` positions of zeroed keys and values (ours: the cache's ``n_past``; llama.cpp: a
sequence state in its own layout, loaded with ``llama_state_seq_set_data``); flash attention does
the same work whatever the cached values are (only the mask's hidden cells are skipped). Then,
timed: one 512-token prompt step at positions [depth, depth + 512), and --decode greedy steps
after it (the first one untimed: it builds the decode graph); with --decode-only, the decode
steps alone, right after the filled positions (a minute per round even on the real Qwen). For each, the wall time and each
thread's CPU seconds (from ``/proc/self/task``): with ggml's OpenMP threads, a thread waiting at
a barrier spins, so the split shows whether any part of a step ran on one thread alone.

llama-cpp-python (``Llama(..., n_batch=512, flash_attn=True)``, f16 cache) is a reference only.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_context import models  # noqa: E402
from bench_engine import Ours  # noqa: E402

STEP = 512
NUM_CTX = 32768 + 80  # room for the deepest step and the decode after it, as bench_context's 32k


def thread_seconds() -> dict[str, float]:
    """CPU seconds (user and system) of each thread of this process."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        seconds[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def busy(before: dict[str, float], after: dict[str, float]) -> list[float]:
    """The CPU seconds of each thread that ran between two readings, busiest first."""
    spent = [after[t] - before.get(t, 0.0) for t in after]
    return sorted((round(s, 2) for s in spent if s > 0.05), reverse=True)


def llama_cpp_filled(path: str, depth: int, threads: int, prompt: list[int]):
    """llama.cpp with its sequence 0 holding positions [0, depth) of zeroed keys and values: the
    state of a real prompt step, parsed (a header of 8 bytes; the stream count and cell count;
    each cell's position and sequences; then per layer the keys' type, row size and rows, and
    the values' likewise), re-written with ``depth`` cells and loaded back."""
    import llama_cpp

    llm = llama_cpp.Llama(
        path,
        n_ctx=NUM_CTX,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=STEP,
        flash_attn=True,
        verbose=False,
        type_k=1,
        type_v=1,
    )
    llm.eval(prompt)
    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
    state = bytes(buffer)[:written]
    streams, cells = struct.unpack_from("<II", state, 8)
    if (streams, cells) != (1, len(prompt)):
        raise RuntimeError(f"unexpected llama.cpp state: {streams} streams, {cells} cells")
    offset = 16 + cells * 12  # each cell: position, one sequence, its id
    v_trans, layers = struct.unpack_from("<II", state, offset)
    offset += 8
    rows = []
    for _ in range(2 * layers):  # keys, then values (not transposed with flash attention)
        kind, row = struct.unpack_from("<iQ", state, offset)
        rows.append((kind, row))
        offset += 12 + row * cells
    if offset != len(state):
        raise RuntimeError("llama.cpp's state is not laid out as expected")
    filled = bytearray(state[:8] + struct.pack("<II", 1, depth))
    filled += b"".join(struct.pack("<iIi", position, 1, 0) for position in range(depth))
    filled += struct.pack("<II", v_trans, layers)
    for kind, row in rows:
        filled += struct.pack("<iQ", kind, row) + bytes(row * depth)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    source = (ctypes.c_uint8 * len(filled)).from_buffer(filled)
    if llama_cpp.llama_state_seq_set_data(llm.ctx, source, len(filled), 0) != len(filled):
        raise RuntimeError("llama.cpp did not take the filled state")
    del source
    llm.n_tokens = depth  # llama-cpp-python's next positions, and the tokens it thinks it holds
    llm.input_ids[:depth] = prompt[0]
    vocab = llm.n_vocab()

    def feed(tokens: list[int]) -> np.ndarray:
        llm.eval(tokens)
        pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(vocab,))

    return feed


def ours_filled(path: str, depth: int, threads: int, prompt: list[int]):
    engine = Ours(path, threads, NUM_CTX, "f16")
    cache = engine.begin()
    engine.feed(cache, prompt)  # builds and runs a prompt step once
    cache.n_past = depth  # the cells past the prompt's are zero, as allocated

    def feed(tokens: list[int]) -> np.ndarray:
        return engine.feed(cache, tokens)

    return feed


def worker(args) -> dict:
    rng = np.random.default_rng(0)
    vocab_low, vocab_high = 200, 19000  # ids every model of ``models()`` has
    prompt = [int(t) for t in rng.integers(vocab_low, vocab_high, STEP)]
    fill = ours_filled if args.worker == "ours" else llama_cpp_filled
    feed = fill(args.path, args.depth, args.threads, prompt)
    result: dict = {}
    if not args.decode_only:
        step = [int(t) for t in rng.integers(vocab_low, vocab_high, STEP)]
        cpu, start = thread_seconds(), time.perf_counter()
        logits = feed(step)
        result["step"] = STEP / (time.perf_counter() - start)
        result["step_cpu"] = busy(cpu, thread_seconds())
    token = prompt[-1] if args.decode_only else int(np.argmax(logits))
    logits = feed([token])  # untimed: builds the decode graph
    cpu, start = thread_seconds(), time.perf_counter()
    for _ in range(args.decode):
        logits = feed([int(np.argmax(logits))])
    result["decode"] = args.decode / (time.perf_counter() - start)
    result["decode_cpu"] = busy(cpu, thread_seconds())
    return result


def run(engine: str, path: str, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--path", path]
    command += ["--depth", str(args.depth), "--decode", str(args.decode)]
    command += ["--threads", str(args.threads)] + (["--decode-only"] if args.decode_only else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="qwenshape")
    parser.add_argument("--depth", type=int, default=32192, help="positions cached before the step")
    parser.add_argument("--decode", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--decode-only", action="store_true", help="decode steps only, right after the filling"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.depth + STEP + args.decode + 1 > NUM_CTX:
        parser.error(f"--depth leaves no room in a context of {NUM_CTX}")
    for name in args.models.split(","):
        path = str(models()[name]())
        print(
            f"{name} at depth {args.depth}: tokens/s (threads' CPU seconds); load {os.getloadavg()}"
        )
        kinds = ["decode"] if args.decode_only else ["step", "decode"]
        ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            order = ("ours", "llama.cpp") if round_ % 2 == 0 else ("llama.cpp", "ours")
            got = {engine: run(engine, path, args) for engine in order}
            line = []
            for kind in ratios:
                ours, theirs = got["ours"][kind], got["llama.cpp"][kind]
                ratios[kind].append(ours / theirs)
                line.append(
                    f"{kind} ours {ours:7.2f} {got['ours'][kind + '_cpu']} "
                    f"llama.cpp {theirs:7.2f} {got['llama.cpp'][kind + '_cpu']} "
                    f"{ours / theirs:.2f}x"
                )
            print(f"  round {round_ + 1}: " + "; ".join(line) + f"; load {os.getloadavg()[0]:.1f}")
        print(
            "  median: "
            + ", ".join(f"{kind} {np.median(r):.2f}x" for kind, r in ratios.items())
            + f"; load {os.getloadavg()}"
        )


if __name__ == "__main__":
    main()
