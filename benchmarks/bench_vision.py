"""Image encoding and time to first token with an image: ollamakit's gemma3 tower on ggml
beside llama.cpp's mtmd (llama-cpp-python), in the same process, alternating, best of ``--repeat``.

    .venv/bin/python benchmarks/bench_vision.py [--blocks 27] [--repeat 3] [--threads 2]

The tower is a random full-size SigLIP (width 1152, feed-forward 4304, 16 heads, image 896,
patch 14: 4096 patches, 256 image tokens), float16 matrices as llama.cpp's converter stores
them, with ``--blocks`` blocks (27 is gemma-3-4b's depth; fewer for a quick look), written as an
mmproj for Gemma 3 270M (``ollamakit.testing.models``). Measured:

* encode: one 896x896 image through the tower and projector (ours: ``VisionTower.encode``;
  llama.cpp: ``mtmd_encode_chunk``). Target: ollamakit <= 1.0x llama.cpp's time.
* time to first token: a chat prompt with the image, from the image's bytes to the first
  token's logits (preprocessing, encoding, the prompt's evaluation). Target: <= 1.1x.

Flash attention is on in both; the same thread count in both. Needs llama-cpp-python 0.3.36.
Beside the wall time each row gives the process's CPU seconds (all threads) of the best run:
on a loaded machine wall time mostly measures the share of the cores a run got, while CPU
time measures the work. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from ollamakit.testing import models
from ollamakit.testing import vision as fixtures
from ollamakit.testing import vision_agreement as va

PROMPT = "<start_of_turn>user\n[img-0]Describe this picture.<end_of_turn>\n<start_of_turn>model\n"


def full_tower(blocks: int, seed: int = 0) -> dict:
    tensors = fixtures.gemma3_tower(
        640, blocks=blocks, width=1152, heads=16, ff=4304, image_size=896, patch=14, seed=seed
    )
    return {
        name: value.astype(np.float16)
        if value.ndim == 2 and name.startswith(("v.blk", "mm.input"))
        else value
        for name, value in tensors.items()
    }


def timed(function) -> tuple[float, float]:
    """Wall seconds and the process's CPU seconds (every thread's) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=27)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import ctypes

    from llama_cpp import llama_cpp as C
    from llama_cpp import mtmd_cpp as M
    from ollamakit_engine import load_runner
    from ollamakit_engine.vision import attach_vision
    from ollamakit_ggml import GgmlBackend
    from ollamakit.inference.prompting import prompt_tokens

    model = str(models.gemma3_270m())
    image = fixtures.pattern_png((1024, 768))
    with tempfile.TemporaryDirectory() as folder:
        tower = full_tower(args.blocks)
        mmproj = str(
            fixtures.gemma3_mmproj(
                Path(folder) / "mmproj.gguf",
                640,
                blocks=args.blocks,
                width=1152,
                heads=16,
                ff=4304,
                image_size=896,
                patch=14,
                tensors=tower,
            )
        )
        del tower
        runner = load_runner(model, GgmlBackend(), {"num_thread": args.threads})
        attach_vision(runner, mmproj)
        vision = runner.vision
        c = vision.tower.config
        from ollamakit_engine.vision_image import pixels

        values = pixels(image, c.image_size, c.mean, c.std)
        lease = types.SimpleNamespace(tokenizer=runner.tokenizer, runner=runner, num_ctx=512)

        va.NUM_CTX = 512
        llm = va._llama(model)
        ctx = va._mtmd(llm, mmproj)
        chunks, _ = va._chunks(ctx, PROMPT.replace("[img-0]", va.marker()), [image])
        image_chunk = next(
            M.mtmd_input_chunks_get(chunks, i)
            for i in range(M.mtmd_input_chunks_size(chunks))
            if M.mtmd_input_chunk_get_type(M.mtmd_input_chunks_get(chunks, i)) == 1
        )

        def ours_encode():
            vision.tower.encode(runner.compute, values)

        def theirs_encode():
            assert M.mtmd_encode_chunk(ctx, image_chunk) == 0

        def ours_first_token():
            vision._kept.clear()
            tokens = prompt_tokens(lease, PROMPT, [image])
            runner.forward([(runner.new_cache(512), tokens)])

        def theirs_first_token():
            fresh, _ = va._chunks(ctx, PROMPT.replace("[img-0]", va.marker()), [image])
            llm.reset()
            C.llama_memory_clear(C.llama_get_memory(llm.ctx), True)
            past = C.llama_pos(0)
            assert (
                M.mtmd_helper_eval_chunks(ctx, llm.ctx, fresh, 0, 0, 512, True, ctypes.byref(past))
                == 0
            )

        load_before = os.getloadavg()
        rows = []
        for name, ours, theirs in (
            ("encode 896x896", ours_encode, theirs_encode),
            ("first token with the image", ours_first_token, theirs_first_token),
        ):
            ours(), theirs()  # warm
            a, b = [], []
            for _ in range(args.repeat):
                a.append(timed(ours))
                b.append(timed(theirs))
            rows.append((name, min(a), min(b)))
        print(
            f"tower: {args.blocks} blocks, width 1152, 4096 patches; {args.threads} threads; best of {args.repeat}; "
            f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        for name, (ours, ours_cpu), (theirs, theirs_cpu) in rows:
            print(
                f"{name:28s} ollamakit {ours:7.3f} s   llama.cpp {theirs:7.3f} s   ratio {ours / theirs:5.2f}x"
                f"   (CPU {ours_cpu:7.2f} s vs {theirs_cpu:7.2f} s: {ours_cpu / theirs_cpu:5.2f}x)"
            )
        M.mtmd_free(ctx)


if __name__ == "__main__":
    main()
