"""Vision agreement with llama.cpp's mtmd (through llama-cpp-python), on the machine at hand:
the image embeddings ``mtmd_get_output_embd`` gives, and greedy tokens after a prompt with an
image, for a text GGUF and a projector GGUF. As with text (``agreement.py``), recorded answers
mean something only beside the CPU that gave them.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .agreement import NUM_CTX

FLASH_ATTN_ENABLED = 1  # llama_flash_attn_type / clip_flash_attn_type
VERBOSE = False


def _mtmd(llm, mmproj: str):
    from llama_cpp import mtmd_cpp as M

    params = M.mtmd_context_params_default()
    params.use_gpu = False
    params.n_threads = 2
    params.print_timings = False
    params.warmup = False
    params.flash_attn_type = FLASH_ATTN_ENABLED
    ctx = M.mtmd_init_from_file(mmproj.encode(), llm.model, params)
    if not ctx:
        raise RuntimeError("mtmd could not load the projector")
    return ctx


def _chunks(ctx, text: str, images: list[bytes]):
    """mtmd's chunks for ``text`` (each image where the default marker stands)."""
    from llama_cpp import mtmd_cpp as M

    bitmaps = []
    for data in images:
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = M.mtmd_helper_bitmap_init_from_buf(ctx, buf, len(data), False)
        if not bitmap:
            raise RuntimeError("mtmd could not decode the image")
        bitmaps.append(bitmap)
    chunks = M.mtmd_input_chunks_init()
    raw = text.encode()
    inp = M.mtmd_input_text(raw, len(raw), True, True)
    array = (M.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
    status = M.mtmd_tokenize(ctx, chunks, ctypes.byref(inp), array, len(bitmaps))
    if status != 0:
        raise RuntimeError(f"mtmd_tokenize failed ({status})")
    return chunks, bitmaps


def marker() -> str:
    from llama_cpp import mtmd_cpp as M

    return M.mtmd_default_marker().decode()


_llamas: dict = {}


def _llama(model: str):
    """A llama.cpp model, kept for the next call (loading is most of a small case's time)."""
    from llama_cpp import Llama

    if model not in _llamas:
        if len(_llamas) >= 2:
            _llamas.pop(next(iter(_llamas)))
        _llamas[model] = Llama(
            model,
            n_ctx=NUM_CTX,
            n_threads=2,
            n_batch=512,
            flash_attn=True,
            logits_all=True,
            verbose=VERBOSE,
        )
    return _llamas[model]


def image_embeddings(model: str, mmproj: str, image: bytes) -> np.ndarray:
    """llama.cpp's embeddings of one image (tokens, text width): its image chunks' rows, in
    order (one chunk, or LLaVA 1.6's tiles and overview)."""
    from llama_cpp import mtmd_cpp as M

    llm = _llama(model)
    ctx = _mtmd(llm, mmproj)
    try:
        chunks, _ = _chunks(ctx, marker(), [image])
        found = []
        for i in range(M.mtmd_input_chunks_size(chunks)):
            chunk = M.mtmd_input_chunks_get(chunks, i)
            if M.mtmd_input_chunk_get_type(chunk) == 1:  # an image
                if M.mtmd_encode_chunk(ctx, chunk) != 0:
                    raise RuntimeError("mtmd_encode_chunk failed")
                rows = M.mtmd_input_chunk_get_n_tokens(chunk)
                out = M.mtmd_get_output_embd(ctx)
                width = llm.n_embd()
                found.append(
                    np.ctypeslib.as_array(out, shape=(rows * width,)).reshape(rows, width).copy()
                )
        if not found:
            raise RuntimeError("mtmd made no image chunk")
        return np.concatenate(found)
    finally:
        M.mtmd_free(ctx)


def greedy(model: str, mmproj: str, text: str, images: list[bytes], tokens: int = 16) -> dict:
    """llama.cpp's prompt token ids (image rows as -1), greedy continuation and top-2 margins
    for ``text`` with ``images`` at the markers."""
    from llama_cpp import llama_cpp as C
    from llama_cpp import mtmd_cpp as M

    llm = _llama(model)
    ctx = _mtmd(llm, mmproj)
    try:
        chunks, _ = _chunks(ctx, text, images)
        prompt = []
        for i in range(M.mtmd_input_chunks_size(chunks)):
            chunk = M.mtmd_input_chunks_get(chunks, i)
            if M.mtmd_input_chunk_get_type(chunk) == 0:
                n = ctypes.c_size_t()
                ids = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                prompt += [int(ids[j]) for j in range(n.value)]
            else:
                prompt += [-1] * M.mtmd_input_chunk_get_n_tokens(chunk)
        llm.reset()
        C.llama_memory_clear(
            C.llama_get_memory(llm.ctx), True
        )  # a kept model: nothing of the last case
        new_past = C.llama_pos(0)
        if (
            M.mtmd_helper_eval_chunks(ctx, llm.ctx, chunks, 0, 0, 512, True, ctypes.byref(new_past))
            != 0
        ):
            raise RuntimeError("mtmd_helper_eval_chunks failed")
        llm.n_tokens = new_past.value
        chosen, margins = [], []
        logits = np.ctypeslib.as_array(
            C.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
        ).copy()
        for _ in range(tokens):
            second, first = np.argsort(logits)[-2:]
            chosen.append(int(first))
            margins.append(float(logits[first] - logits[second]))
            llm.eval([int(first)])
            logits = np.asarray(llm.scores[llm.n_tokens - 1]).copy()
        return {"prompt_ids": prompt, "greedy_ids": chosen, "margins": margins}
    finally:
        M.mtmd_free(ctx)


RECORDED = "llamacpp-vision.json"
PROMPT = "<start_of_turn>user\n[img-0]Describe this picture.<end_of_turn>\n<start_of_turn>model\n"
LLAVA_PROMPT = "<|im_start|>user\n[img-0]Describe this picture.<|im_end|>\n<|im_start|>assistant\n"
IMAGES = {"pattern": lambda: _pattern(), "red": lambda: _solid((220, 30, 30))}
# LLaVA 1.6 with tiles of 56: a 2x2 grid, a 3x1 grid letterboxed, and the overview alone
ANYRES_IMAGES = {
    "pattern": IMAGES["pattern"],
    "wide": lambda: _pattern((300, 90), seed=1),
    "small": lambda: _pattern((40, 30), seed=2),
}
PINPOINTS = [(56, 112), (112, 56), (112, 112), (168, 56), (56, 168)]  # LLaVA 1.6's, over 6
TOKENS = 16


def _pattern(size=(150, 100), seed: int = 0) -> bytes:
    from .vision import pattern_png

    return pattern_png(size, seed)


def _solid(colour) -> bytes:
    from .vision import solid_png

    return solid_png(colour)


def fixture_projector(folder) -> str:
    """The fixture tower for Gemma 3 270M: 2 blocks, F32, image 112, patch 14 (seed 0)."""
    from pathlib import Path

    from .vision import gemma3_mmproj

    return str(gemma3_mmproj(Path(folder) / "gemma3-fixture-mmproj.gguf", 640))


def llava_projector(folder) -> str:
    """The fixture LLaVA mlp projector for SmolLM2: 3 blocks (2 run), F32, image 56, patch 14."""
    from pathlib import Path

    from .vision import llava_mmproj

    return str(llava_mmproj(Path(folder) / "llava-fixture-mmproj.gguf", 576))


LLAVA16_TEXT_EMBD = 64


def llava16_text(folder) -> str:
    """The text model of the LLaVA 1.6 cases: a tiny generated float32 llama (seed 0). Its
    activations are never quantized on the way, so the few 1e-4 by which two ggml builds' towers
    part leave its answer alone; a quantized model, fed 48 to 80 random image rows, can turn
    them into another token."""
    from pathlib import Path

    from .gguf_factory import tiny_llama

    path = Path(folder) / "llava16-fixture-text.gguf"
    return str(
        path
        if path.exists()
        else tiny_llama(path, n_embd=LLAVA16_TEXT_EMBD, context_length=NUM_CTX)
    )


def llava16_projector(folder, feature_layers=(3,)) -> str:
    """The fixture LLaVA 1.6 projector for ``llava16_text``: 3 blocks, feature layer 3 (all
    blocks run, as the legacy converter writes LLaVA 1.6), grid pinpoints over tiles of 56; with
    ``feature_layers`` (1, 3) the inputs of two layers side by side."""
    from pathlib import Path

    from .vision import llava_mmproj

    name = "-".join(str(n) for n in feature_layers)
    return str(
        llava_mmproj(
            Path(folder) / f"llava16-fixture-mmproj-{name}.gguf",
            LLAVA16_TEXT_EMBD,
            pinpoints=PINPOINTS,
            feature_layers=list(feature_layers),
        )
    )


def cases(folder) -> dict:
    """name -> (text GGUF, projector GGUF, prompt, image maker), every case the records hold."""
    from . import models

    gemma, smol = str(models.gemma3_270m()), str(models.smollm2_q4_1())
    gemma_projector, llava = fixture_projector(folder), llava_projector(folder)
    found = {
        f"gemma3/{name}": (gemma, gemma_projector, PROMPT, make) for name, make in IMAGES.items()
    }
    found["llava/pattern"] = (smol, llava, LLAVA_PROMPT, IMAGES["pattern"])
    tiny, llava16 = llava16_text(folder), llava16_projector(folder)
    for name, make in ANYRES_IMAGES.items():
        found[f"llava16/{name}"] = (tiny, llava16, LLAVA_PROMPT, make)
    found["llava16/stacked"] = (
        tiny,
        llava16_projector(folder, (1, 3)),
        LLAVA_PROMPT,
        ANYRES_IMAGES["pattern"],
    )
    return found


def answer(model: str, mmproj: str, prompt: str, image: bytes) -> dict:
    """llama.cpp's embeddings of ``image`` and its greedy answer to ``prompt`` with it."""
    return {
        "embeddings": image_embeddings(model, mmproj, image),
        **greedy(model, mmproj, prompt.replace("[img-0]", marker()), [image], TOKENS),
    }


if __name__ == "__main__":  # python -m ollamakit.testing.vision_agreement [output.json]
    import json
    import sys
    import tempfile
    from pathlib import Path

    import llama_cpp

    from .agreement import cpu

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/reference") / RECORDED
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, mmproj, prompt, make) in cases(folder).items():
            found[name] = answer(model, mmproj, prompt, make())
            found[name]["embeddings"] = np.round(found[name]["embeddings"], 5).tolist()
    document = {
        "generator": f"llama-cpp-python {llama_cpp.__version__} (mtmd), built on this machine; Gemma 3 270M Q4_K_M with "
        "the fixture gemma3 projector, SmolLM2-135M Q4_1 with the fixture LLaVA mlp projector, and the tiny "
        "float32 llama of ollamakit.testing.gguf_factory with the LLaVA 1.6 ones (grid pinpoints; feature layers 3, "
        "or 1 and 3), all from ollamakit.testing.vision (seed 0); flash attention on (text and tower), "
        f"n_threads 2, n_ctx {NUM_CTX}; mtmd_get_output_embd rounded to 5 decimals; {TOKENS} greedy tokens after "
        "the case's prompt with the image at its marker, with llama.cpp's top-2 logit margin at each step",
        "cpu": cpu(),
        "cases": found,
    }
    target.write_text(json.dumps(document) + "\n")
