"""Engine speed and memory on the CPU: our ggml engine beside llama.cpp, same machine, same run.

    .venv/bin/python benchmarks/bench_engine.py                          # smollm2, gemma3, qwen
    .venv/bin/python benchmarks/bench_engine.py --models qwen --threads 2 --llama-threads 1
    .venv/bin/python benchmarks/bench_engine.py --models qwen3moe,gptoss,deepseek2 --prompt 64 --decode 32
    .venv/bin/python benchmarks/bench_engine.py --models qwen3moe,gptoss,deepseek2 --check  # logits first
    .venv/bin/python benchmarks/bench_engine.py --models qwen3moe,gptoss --prompt 64 --decode 32 --rounds 8
    .venv/bin/python benchmarks/bench_engine.py --models smollm2 --streams-only --repeats 6
    .venv/bin/python benchmarks/bench_engine.py --streams-only --variants ours/ggml --repeats 4

For each model, with both engines at the same num_ctx (--prompt + --decode + a margin):

  prefill     tokens/s of one --prompt-token prompt (random token ids, fixed seed)
  decode      tokens/s of --decode greedy steps after a short prompt, and after the long one
  memory      peak resident set (VmHWM) of a process that loaded the model and answered the
              long prompt; Python and numpy alone (before either engine is imported) are shown beneath it
  streams     our aggregate tokens/s of 4 sequences decoded together (4 caches, one forward
              call per step), against one stream; llama-cpp-python has no batched API
  --streams-only  ours alone: one stream and 4 streams decoded in turns in one process, one
              row per round (the order swapped each round), so both see the same machine; with
              --variants ours/ggml, ggml's own products beside ours in the same rounds
  --rounds N  instead of one process per run: each engine loaded once, in its own process, the
              engines then timed in turns N times (the order reversed each round); a row per round
              and the median of the rounds' ratios, the figure to read on a shared machine
  --check     no timing: both engines' logits on the prompt and --check-steps greedy steps,
              compared step by step (the largest difference, and whether the tokens agree)
  variants    with --variants, the same figures for ours with fast prefill (ours/fast), for
              ours with ggml's own products only (ours/ggml: without ollamakit's kernels), for
              ours without its Q4_K kernel only (ours/no-q4_k), for ours with its weights on
              4 KiB pages (ours/4k-pages: without huge pages), and for either engine with the
              model's seeded random rank-8 LoRA adapter (ours+lora, llama.cpp+lora), each
              beside its plain engine

Every run of an engine is a fresh subprocess, so the resident memory is that engine's alone and
neither inherits the other's page-ins or allocator state. The model file is read through once
before the runs, so both engines start from a file in the page cache, and each run answers the
prompt once, untimed, before anything is timed (which touches the mapped weights and builds the
graphs). Runs alternate between the engines
(ours, llama.cpp, llama.cpp, ours, ...) so a change in the machine's speed during the run lands
on both alike; each figure is the best of --repeats. Run on an idle machine (check ``uptime``):
both engines use every thread they are given, and a busy neighbour stalls them. On a machine
with more runnable threads than cores, give both engines one thread (--threads 1): a ggml graph
ends each of its nodes at a barrier where every thread waits for the others, so when the
scheduler has parked one of them, the rest wait out its time slice, at every node. A decode step
of a mixture of experts is hundreds of small nodes: at a load average of 14 on 2 cores, 2 threads
decode the realistic qwen3moe at 0.3-0.8 tokens/s in either engine, one thread at 6-7. A run is
seconds long, so a neighbour's burst lowers one engine's figure and not the other's; the engine
that ran before does not (its process has exited: performance.md, "Why gpt-oss read lower
beside llama.cpp"). On a shared machine use --rounds, whose two figures of a round are a
second apart, and read the median of the rounds' ratios.

llama.cpp (``pip install llama-cpp-python``; not a project dependency) runs as
``Llama(path, n_ctx, n_threads, n_batch=512, flash_attn=True)``; it is skipped when absent.
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

ENGINES = ("ours", "llama.cpp")
# Variants measured beside their plain engine when asked (--variants): fast prefill
# (OLLAMAKIT_FAST_PREFILL), ggml's own products only (OLLAMAKIT_KERNELS=0), ours with every kernel
# but the repacked Q4_K one, ours with its weights on 4 KiB pages (OLLAMAKIT_HUGE_PAGES=0), and
# each engine with the model's seeded random LoRA adapter.
VARIANTS = (
    "ours/fast",
    "ours/ggml",
    "ours/no-q4_k",
    "ours/4k-pages",
    "ours+lora",
    "llama.cpp+lora",
)
STREAMS = 4
SHORT = 8  # tokens of the short prompt decode starts from
MARGIN = 16  # cache positions beyond prompt + decode (the untimed warm-up step, slack)
IDLE = 0.2  # seconds between two engines' turns (OpenMP's idle threads spin a few ms at most)


def proc_status(field: str) -> int:
    """A ``/proc/self/status`` size field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# -- one engine in its own process ------------------------------------------------------------


class Ours:
    batched = True

    def __init__(
        self,
        path: str,
        threads: int,
        num_ctx: int,
        cache_type: str = "f16",
        fast_prefill: bool = False,
        adapter: str | None = None,
    ):
        from ollamakit_engine import load_runner
        from ollamakit_ggml import GgmlBackend

        options = {"num_thread": threads, "kv_cache_type": cache_type, "fast_prefill": fast_prefill}
        adapters = [adapter] if adapter else []
        self.runner = load_runner(
            path, GgmlBackend(), options, with_tokenizer=False, adapters=adapters
        )
        self.num_ctx = num_ctx

    def begin(self):
        return self.runner.new_cache(self.num_ctx)

    def feed(self, seq, tokens: list[int]) -> np.ndarray:
        return self.runner.forward([(seq, tokens)])[0]

    def feed_many(self, seqs, tokens: list[list[int]]) -> list[np.ndarray]:
        return self.runner.forward(list(zip(seqs, tokens)))


class LlamaCpp:
    batched = False  # one sequence per Llama object in llama-cpp-python

    def __init__(
        self, path: str, threads: int, num_ctx: int, cache_type: int = 1, adapter: str | None = None
    ):
        import llama_cpp

        self.llama_cpp = llama_cpp
        # cache_type: a ggml type id (1: f16, 8: q8_0, 2: q4_0), as llama-cpp-python takes it
        self.llm = llama_cpp.Llama(
            path,
            n_ctx=num_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            flash_attn=True,
            verbose=False,
            type_k=cache_type,
            type_v=cache_type,
            lora_path=adapter,
        )
        self.vocab = self.llm.n_vocab()

    def begin(self):
        self.llm.reset()  # the next eval drops the cached positions from 0 on
        return self.llm

    def feed(self, seq, tokens: list[int]) -> np.ndarray:
        seq.eval(tokens)
        # the last row straight from llama.cpp: Llama.scores is only kept with logits_all
        pointer = self.llama_cpp.llama_get_logits_ith(seq.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab,))


def timed_decode(engine, seq, logits, steps: int) -> float:
    """Seconds for ``steps`` greedy steps, after one untimed step (which builds the step's
    graph in either engine: a cost of the first token, not of decoding)."""
    logits = engine.feed(seq, [int(np.argmax(logits))])
    start = time.perf_counter()
    for _ in range(steps):
        logits = engine.feed(seq, [int(np.argmax(logits))])
    return time.perf_counter() - start


def open_engine(args, num_ctx: int, adapter: str | None = None):
    if args.worker.startswith("ours"):
        return Ours(
            args.path,
            args.threads,
            num_ctx,
            fast_prefill=args.worker == "ours/fast",
            adapter=adapter,
        )
    return LlamaCpp(args.path, args.llama_threads, num_ctx, adapter=adapter)


def long_prompt(n: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(1).integers(200, 20000, n)]


def logits_worker(args) -> dict:
    """``--check``: the logits of the prompt and of ``--check-steps`` greedy steps after it,
    saved to ``--logits-out`` (one row a step)."""
    prompt = long_prompt(args.prompt)
    engine = open_engine(args, args.prompt + args.check_steps + MARGIN)
    seq = engine.begin()
    rows = [np.array(engine.feed(seq, prompt), np.float32)]
    for _ in range(args.check_steps):
        rows.append(np.array(engine.feed(seq, [int(np.argmax(rows[-1]))]), np.float32))
    np.save(args.logits_out, np.stack(rows))
    return {"steps": len(rows)}


def worker(args) -> dict:
    prompt = long_prompt(args.prompt)
    num_ctx = args.prompt + args.decode + MARGIN
    base = proc_status("VmHWM")
    adapter = args.adapter if args.worker.endswith("+lora") else None
    if args.worker == "ours/ggml":  # read when the ggml library loads, below
        os.environ["OLLAMAKIT_KERNELS"] = "0"
    if args.worker == "ours/4k-pages":  # read when the engine loads, below
        os.environ["OLLAMAKIT_HUGE_PAGES"] = "0"
    engine = open_engine(args, num_ctx, adapter)
    if args.worker == "ours/no-q4_k":
        engine.runner.model.kernels = without_q4_k(engine.runner.model.kernels)
    engine.feed(engine.begin(), prompt)  # also pages the weights in
    result = {"base": base, "peak": proc_status("VmHWM")}
    if args.worker.startswith("ours"):
        result["memory_bytes"] = engine.runner.memory_bytes
    if args.serve:  # --rounds: one round of rates per line read, the engine kept loaded
        print(json.dumps(result), flush=True)
        for _ in sys.stdin:
            print(json.dumps(rates(engine, prompt, args)), flush=True)
        return {"peak": proc_status("VmHWM")}
    result.update(rates(engine, prompt, args))
    if engine.batched:
        result["streams"] = streams_rate(engine, prompt, args.decode)
    return result


def rates(engine, prompt: list[int], args) -> dict:
    """Prefill of the long prompt, then decode after it and after the short one (tokens/s)."""
    result = {}
    seq = engine.begin()
    start = time.perf_counter()
    logits = engine.feed(seq, prompt)
    result["prefill"] = args.prompt / (time.perf_counter() - start)
    result["decode_long"] = args.decode / timed_decode(engine, seq, logits, args.decode)
    seq = engine.begin()
    logits = engine.feed(seq, prompt[:SHORT])
    result["decode_short"] = args.decode / timed_decode(engine, seq, logits, args.decode)
    return result


def without_q4_k(kernels):
    """ollamakit's kernels less the repacked Q4_K one (None stays None)."""
    from ollamakit.lib.ggml import lib as L

    if kernels is None:
        return None
    fewer = L.Kernels(kernels.handle, kernels.library)
    fewer.products.pop(L.TYPE_Q4_K, None)
    return fewer


def streams_rate(engine, prompt: list[int], steps: int) -> float:
    """Aggregate tokens/s of ``STREAMS`` sequences decoded together (one forward call a step)
    for ``steps`` greedy steps, after one untimed step."""
    seqs = [engine.begin() for _ in range(STREAMS)]
    outs = engine.feed_many(seqs, [prompt[i * SHORT : (i + 1) * SHORT] for i in range(STREAMS)])
    outs = engine.feed_many(seqs, [[int(np.argmax(o))] for o in outs])
    start = time.perf_counter()
    for _ in range(steps):
        outs = engine.feed_many(seqs, [[int(np.argmax(o))] for o in outs])
    return STREAMS * steps / (time.perf_counter() - start)


def one_stream_rate(engine, prompt: list[int], steps: int) -> float:
    seq = engine.begin()
    logits = engine.feed(seq, prompt[:SHORT])
    return steps / timed_decode(engine, seq, logits, steps)


def streams_rounds(args, path) -> None:
    """``--streams-only``: our one stream against ``STREAMS`` streams, in turns in this process
    (the order swapped each round), a row per round as it ends. With ``--variants ours/ggml``,
    the same model loaded a second time without ollamakit's kernels (ggml's own products, as
    ``OLLAMAKIT_KERNELS=0`` gives) is measured in the same rounds, in turns with the first; with
    ``ours/no-q4_k``, the same without the Q4_K kernel only."""
    prompt = [int(t) for t in np.random.default_rng(1).integers(200, 20000, STREAMS * SHORT)]
    num_ctx = STREAMS * SHORT + args.decode + MARGIN
    engines = {"ours": Ours(str(path), args.threads, num_ctx)}
    if "ours/no-q4_k" in args.variants.split(","):
        engines["ours/no-q4_k"] = Ours(str(path), args.threads, num_ctx)
        model = engines["ours/no-q4_k"].runner.model
        model.kernels = without_q4_k(model.kernels)
    if "ours/ggml" in args.variants.split(","):
        engines["ours/ggml"] = Ours(str(path), args.threads, num_ctx)
        engines["ours/ggml"].runner.model.kernels = None
    for engine in engines.values():
        engine.feed(engine.begin(), prompt)  # pages the weights in
    print(f"\n{path.name}: {args.decode} greedy steps after {SHORT} tokens; threads {args.threads}")
    header = "".join(
        f"{f'{name}: one':>16}{f'{STREAMS} streams':>11}{'ratio':>7}" for name in engines
    )
    print(f"  {'round':>5}{header}  load average")
    rates: dict[str, dict[str, list[float]]] = {
        name: {"one": [], "many": [], "ratio": []} for name in engines
    }
    for round_ in range(args.repeats):
        turns = [
            (name, kind, measure)
            for name in engines
            for kind, measure in (("one", one_stream_rate), ("many", streams_rate))
        ]
        for name, kind, measure in turns if round_ % 2 == 0 else turns[::-1]:
            rates[name][kind].append(measure(engines[name], prompt, args.decode))
        row = ""
        for name in engines:
            figures = rates[name]
            figures["ratio"].append(figures["many"][-1] / figures["one"][-1])
            row += (
                f"{figures['one'][-1]:16.1f}{figures['many'][-1]:11.1f}{figures['ratio'][-1]:6.2f}x"
            )
        print(f"  {round_ + 1:>5}{row}  {os.getloadavg()[0]:.2f}", flush=True)
    for name, figures in rates.items():
        print(
            f"  {name}: median ratio {float(np.median(figures['ratio'])):.2f}x; best of each "
            f"{max(figures['one']):.1f} / {max(figures['many']):.1f} tokens/s, "
            f"{max(figures['many']) / max(figures['one']):.2f}x"
        )


# -- the comparison ---------------------------------------------------------------------------


def cpu_summary() -> str:
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    marks = ", ".join(
        f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx2", "avx512f", "avx512_vnni")
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({cores} cores usable; {marks})"


def run_worker(engine: str, path, args, adapter=None, logits_out=None) -> dict:
    done = subprocess.run(
        worker_command(engine, path, args, adapter, logits_out),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_command(engine: str, path, args, adapter=None, logits_out=None) -> list[str]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        engine,
        "--path",
        str(path),
        "--adapter",
        str(adapter or ""),
        "--prompt",
        str(args.prompt),
        "--decode",
        str(args.decode),
        "--threads",
        str(args.threads),
        "--llama-threads",
        str(args.llama_threads),
    ]
    if logits_out:
        command += ["--logits-out", str(logits_out), "--check-steps", str(args.check_steps)]
    return command


def rounds_beside(name: str, path, engines: list[str], args, adapter=None) -> None:
    """``--rounds``: every engine loaded once, in a process of its own, all at the same time;
    then each round times every engine in turns (the order reversed every round), seconds
    apart, so the two figures of a round saw the same machine. The median of the rounds'
    ratios is the figure to read on a shared machine; peak memory is each process's own."""
    workers = {}
    try:
        for engine in engines:
            workers[engine] = subprocess.Popen(
                worker_command(engine, path, args, adapter) + ["--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        loaded = {engine: json.loads(read_line(worker)) for engine, worker in workers.items()}
        keys = ("prefill", "decode_short", "decode_long")
        runs: dict[str, list[dict]] = {engine: [] for engine in engines}
        print(
            f"\n{name}: {path.name}; {args.rounds} rounds, engines in turns; threads: ours "
            f"{args.threads}, llama.cpp {args.llama_threads}; decode {args.decode} after "
            f"{SHORT} tokens, tokens/s"
        )
        print(f"  {'round':>5}" + "".join(f"{e:>16}" for e in engines) + "   ratio  load average")
        for round_ in range(args.rounds):
            for engine in engines if round_ % 2 == 0 else engines[::-1]:
                time.sleep(IDLE)  # the last engine's threads stop polling for work first
                worker = workers[engine]
                assert worker.stdin is not None
                worker.stdin.write("round\n")
                worker.stdin.flush()
                runs[engine].append(json.loads(read_line(worker)))
            row = "".join(f"{runs[e][-1]['decode_short']:16.1f}" for e in engines)
            ratio = runs["ours"][-1]["decode_short"] / runs[engines[1]][-1]["decode_short"]
            print(f"  {round_ + 1:>5}{row}{ratio:7.2f}x  {os.getloadavg()[0]:.2f}", flush=True)
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.close()
        peaks = {
            engine: json.loads(read_line(worker))["peak"] for engine, worker in workers.items()
        }
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()
    for other in engines[1:]:
        print(f"  ours against {other}, median of the rounds' ratios (and of each engine's rates):")
        for key in keys:
            ratios = [a[key] / b[key] for a, b in zip(runs["ours"], runs[other])]
            print(
                f"    {key:14}{float(np.median(ratios)):6.2f}x  "
                f"({float(np.median([r[key] for r in runs['ours']])):.1f} / "
                f"{float(np.median([r[key] for r in runs[other]])):.1f} tokens/s)"
            )
        print(
            f"    {'peak resident':14}{peaks['ours'] / peaks[other]:6.2f}x  "
            f"({peaks['ours'] / 2**20:.0f} / {peaks[other] / 2**20:.0f} MiB; "
            f"{loaded['ours']['base'] / 2**20:.0f} / {loaded[other]['base'] / 2**20:.0f} "
            "MiB of them Python and numpy alone)"
        )


def read_line(worker: subprocess.Popen) -> str:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"a worker stopped (exit status {worker.wait()})")
    return line


def warm_page_cache(path) -> None:
    """Read the model file through once, so that both engines' first runs find it in the page
    cache rather than the first paying for the disk."""
    with open(path, "rb") as model:
        while model.read(1 << 24):
            pass


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def check(name, path, args) -> None:
    """``--check``: both engines' logits on one prompt and the greedy steps after it, step by
    step: the largest difference of the logits and of the top-5 log-probabilities, llama.cpp's
    own top-2 margin, and whether the greedy tokens agree (each engine follows its own)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        rows = {}
        for engine in ENGINES:
            out = os.path.join(folder, f"{engine}.npy")
            run_worker(engine, path, args, logits_out=out)
            rows[engine] = np.load(out)
    ours, theirs = rows["ours"], rows["llama.cpp"]
    print(f"\n{name}: {path.name}; logits after a {args.prompt}-token prompt, then greedy steps")
    print(
        f"  {'step':>4}{'max |logit diff|':>18}{'max top-5 logprob diff':>24}{'margin':>9}  tokens"
    )
    for step, (mine, other) in enumerate(zip(ours, theirs)):
        top = np.argsort(other)[::-1][:5]
        print(
            f"  {step:>4}{float(np.abs(mine - other).max()):18.6f}"
            f"{float(np.abs(log_softmax(mine)[top] - log_softmax(other)[top]).max()):24.6f}"
            f"{float(other[top[0]] - other[top[1]]):9.4f}  "
            f"{int(np.argmax(mine))} / {int(np.argmax(other))}"
        )
        if np.argmax(mine) != np.argmax(other):
            print("  the greedy tokens part here; later steps are not compared")
            break


def best(runs: list[dict]) -> dict:
    """Best of the runs: the highest rate and the lowest peak memory."""
    merged = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        merged[key] = min(values) if key in ("base", "peak", "memory_bytes") else max(values)
    return merged


def report(name, path, args, ours: dict, theirs: dict | None) -> None:
    num_ctx = args.prompt + args.decode + MARGIN
    print(
        f"\n{name}: {path.name}, {path.stat().st_size / 2**20:.0f} MiB; num_ctx {num_ctx}; "
        f"threads: ours {args.threads}, llama.cpp {args.llama_threads}"
    )
    print(f"  {'':34}{'ollamakit':>11}{'llama.cpp':>11}{'ratio':>9}")

    def row(label, key, unit, scale=1.0):
        mine = ours[key] / scale
        other = theirs[key] / scale if theirs else None
        other_text = f"{other:11.1f}" if other else f"{'n/a':>11}"
        ratio = f"{mine / other:8.2f}x" if other else f"{'':9}"
        print(f"  {label:34}{mine:11.1f}{other_text}{ratio}  {unit}")

    row(f"prefill, {args.prompt}-token prompt", "prefill", "tokens/s")
    row(f"decode {args.decode}, after {SHORT} tokens", "decode_short", "tokens/s")
    row(f"decode {args.decode}, after {args.prompt} tokens", "decode_long", "tokens/s")
    row(f"peak resident, {args.prompt} tokens answered", "peak", "MiB", 2**20)
    row("  of which Python and numpy alone", "base", "MiB", 2**20)
    print(
        f"  {f'decode {args.decode}, {STREAMS} streams (sum)':34}{ours['streams']:11.1f}{'n/a':>11}{'':9}"
        f"  tokens/s, {ours['streams'] / ours['decode_short']:.2f}x one stream"
    )
    print(f"  our runner reports {ours['memory_bytes'] / 2**20:.0f} MiB (weights and caches)")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end")


def report_variant(variant: str, args, mine: dict, plain: dict) -> None:
    """A variant's rates beside its plain engine's, measured in the same alternation."""
    print(f"  {variant} against {variant.split('/')[0].split('+')[0]}:")
    for label, key in (
        (f"prefill, {args.prompt}-token prompt", "prefill"),
        (f"decode, after {SHORT} tokens", "decode_short"),
        (f"decode, after {args.prompt} tokens", "decode_long"),
    ):
        print(
            f"    {label:32}{mine[key]:11.1f}{plain[key]:11.1f}{mine[key] / plain[key]:8.2f}x  tokens/s"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="smollm2,gemma3,qwen",
        help="comma-separated: smollm2, gemma3, qwen, qwen3moe, gptoss, deepseek2 (the last three "
        "are built on first use)",
    )
    parser.add_argument("--prompt", type=int, default=512, help="tokens of the long prompt")
    parser.add_argument("--decode", type=int, default=128, help="greedy steps per decode figure")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each engine; the best counts"
    )
    parser.add_argument("--threads", type=int, default=2, help="our num_thread")
    parser.add_argument(
        "--llama-threads",
        type=int,
        default=None,
        help="llama.cpp's n_threads and n_threads_batch (default: --threads)",
    )
    parser.add_argument("--no-llamacpp", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="instead of --repeats: every engine loaded once, then this many rounds of prefill "
        "and decode in turns; the median of the rounds' ratios",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--streams-only",
        action="store_true",
        help=f"only our one stream against {STREAMS} streams, in turns, --repeats rounds",
    )
    parser.add_argument(
        "--variants", default="", help=f"comma-separated, also measured: {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare both engines' logits instead of timing"
    )
    parser.add_argument("--check-steps", type=int, default=8, help="greedy steps of --check")
    parser.add_argument("--logits-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=ENGINES + VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.llama_threads is None:
        args.llama_threads = args.threads
    if args.prompt <= STREAMS * SHORT:
        parser.error(f"--prompt must be more than {STREAMS * SHORT} tokens")

    if args.worker:
        print(json.dumps(logits_worker(args) if args.logits_out else worker(args)), flush=True)
        return

    from ollamakit.lib.ggml import lib

    from realistic_moe import realistic_deepseek2, realistic_gptoss, realistic_qwen3moe

    from ollamakit.testing import models

    catalog = {
        "smollm2": models.smollm2_q4_1,
        "gemma3": models.gemma3_270m,
        "qwen": models.qwen25_coder_1_5b,
        # mixture of experts: a random qwen3moe of qwen3:30b-a3b's block shape, Q4_K_M, about 1.2 GB
        "qwen3moe": lambda: realistic_qwen3moe(
            models.CACHE / "models" / "qwen3moe-realistic-q4_k_m.gguf"
        ),
        # a random gpt-oss of gpt-oss-20b's block shape, MXFP4 experts, 2 layers, about 1.3 GB
        "gptoss": lambda: realistic_gptoss(models.CACHE / "models" / "gptoss-realistic-mxfp4.gguf"),
        # a random deepseek2 of deepseek-v2-lite's block shape (latent attention, 64 experts
        # and 2 shared), 2 layers, Q4_K_M, about 0.8 GB
        "deepseek2": lambda: realistic_deepseek2(
            models.CACHE / "models" / "deepseek2-realistic-q4_k_m.gguf"
        ),
    }
    engines = list(ENGINES) + [v for v in args.variants.split(",") if v]
    if unknown := set(engines) - set(ENGINES + VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if args.no_llamacpp or args.streams_only or importlib.util.find_spec("llama_cpp") is None:
        engines = [e for e in engines if not e.startswith("llama.cpp")]
    if args.check and "llama.cpp" not in engines:
        parser.error("--check needs llama-cpp-python")
    print(f"CPU: {cpu_summary()}")
    print(f"ggml (ours): {lib.load().origin}")
    if "llama.cpp" in engines:
        from importlib.metadata import version

        print(f"llama.cpp: llama-cpp-python {version('llama-cpp-python')}")
    else:
        print("llama.cpp: not measured")
    print(
        f"load average {os.getloadavg()[0]:.2f}"
        + ("" if args.check else f"; best of {args.repeats}")
    )

    for name in args.models.split(","):
        path = catalog[name]()
        warm_page_cache(path)
        if args.check:
            check(name, path, args)
            continue
        if args.streams_only:
            streams_rounds(args, path)
            continue
        adapter = (
            models.random_lora(path, models.CACHE / "models" / f"{path.stem}-lora-r8-seed0.gguf")
            if "+lora" in args.variants
            else None
        )
        if args.rounds:
            if len(engines) < 2:
                parser.error("--rounds compares ours with llama.cpp or a variant")
            rounds_beside(name, path, engines, args, adapter)
            continue
        runs: dict[str, list[dict]] = {engine: [] for engine in engines}
        for repeat in range(args.repeats):
            # alternate which engine goes first, so neither always runs on a cooler machine
            for engine in engines if repeat % 2 == 0 else engines[::-1]:
                runs[engine].append(run_worker(engine, path, args, adapter))
        theirs = best(runs["llama.cpp"]) if "llama.cpp" in runs else None
        report(name, path, args, best(runs["ours"]), theirs)
        for variant in (e for e in engines if e not in ENGINES):
            report_variant(
                variant, args, best(runs[variant]), best(runs[variant.split("/")[0].split("+")[0]])
            )


if __name__ == "__main__":
    main()
