"""The ggml graph engine on tiny generated models: against the float64 reference, and its own
contract (caches, context shift, cancellation, weights kept in the file's blocks)."""

from __future__ import annotations

import numpy as np
import pytest
from ollamakit_ggml import GgmlBackend

from ollamakit.errors import BadRequest, Cancelled

from ollamakit.testing.gguf_factory import make_gguf

from .tiny_models import VOCAB, load, reference_logits, write_model

PROMPT = [5, 17, 3, 88, 42, 9, 61, 23, 70, 1, 33]
MODELS = {
    "llama": dict(arch="llama"),
    "qwen2": dict(arch="qwen2", biases=True),
    "gemma3": dict(
        arch="gemma3", n_layers=6, n_heads=4, n_kv_heads=1, head_dim=32, window=4, softcap=30.0
    ),
}
# Keys and values are cached as float16, as llama.cpp caches them: about 3 decimal digits.
TOLERANCE = dict(atol=2e-2, rtol=2e-2)


@pytest.fixture(scope="module")
def backend():
    return GgmlBackend()


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("graph") / f"{request.param}.gguf"
    meta, tensors = write_model(path, **MODELS[request.param])
    return path, meta, tensors


def test_prompt_and_decode_match_the_reference(tiny, backend):
    path, meta, tensors = tiny
    expected = reference_logits(meta, tensors, PROMPT)
    runner = load(path, backend)
    logits = runner.forward([(runner.new_cache(32), PROMPT)])[0]
    assert logits.shape == (VOCAB,) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected[-1], **TOLERANCE)
    cache = runner.new_cache(32)
    stepped = np.stack([runner.forward([(cache, [token])])[0] for token in PROMPT])
    np.testing.assert_allclose(stepped, expected, **TOLERANCE)
    assert cache.n_past == len(PROMPT)


def test_batched_chunked_and_mixed_steps_agree(tiny, backend):
    path, _, _ = tiny
    runner = load(path, backend, num_batch=8)
    prompts = [PROMPT, [7, 7, 2], [90]]
    alone = []
    for prompt in prompts:
        cache = runner.new_cache(32)
        first = runner.forward([(cache, prompt)])[0]
        alone.append([first] + [runner.forward([(cache, [t])])[0] for t in (4, 50, 11)])
    caches = [runner.new_cache(32) for _ in prompts]
    together = [runner.forward(list(zip(caches, prompts)))]  # 15 rows in steps of 8
    for token in (4, 50, 11):
        together.append(runner.forward([(cache, [token]) for cache in caches]))
    for step, outputs in enumerate(together):
        for seq, logits in enumerate(outputs):
            np.testing.assert_allclose(logits, alone[seq][step], atol=2e-3)


def test_truncate_and_errors(tiny, backend):
    path, _, _ = tiny
    runner = load(path, backend)
    cache = runner.new_cache(32)
    runner.forward([(cache, PROMPT)])
    cache.truncate(4)
    again = runner.forward([(cache, PROMPT[4:])])[0]
    np.testing.assert_allclose(
        again, runner.forward([(runner.new_cache(32), PROMPT)])[0], atol=2e-3
    )
    small = runner.new_cache(8)
    with pytest.raises(BadRequest, match="exceed the context"):
        runner.forward([(small, list(range(9)))])
    with pytest.raises(BadRequest, match="outside the vocabulary"):
        runner.forward([(small, [VOCAB])])
    assert small.n_past == 0


@pytest.mark.parametrize("cache_type", ["q8_0", "q4_0"])
def test_quantized_caches_stay_close_and_take_their_size(tmp_path, backend, cache_type):
    path = tmp_path / "llama.gguf"
    meta, tensors = write_model(path, "llama", n_embd=128, n_heads=2, n_kv_heads=1)  # heads of 64
    expected = reference_logits(meta, tensors, PROMPT)[-1]
    runner = load(path, backend, kv_cache_type=cache_type)
    cache = runner.new_cache(64)
    logits = runner.forward([(cache, PROMPT)])[0]
    assert np.corrcoef(logits, expected)[0, 1] > (
        0.999 if cache_type == "q8_0" else 0.97
    )  # 4 bits are coarse
    # bytes per cell: 2 layers x (keys + values) of 64 values in blocks of 32; 64 positions
    # take 256 cells, as llama.cpp rounds its context up
    block = {"q8_0": 34, "q4_0": 18}[cache_type]
    assert runner.cache_bytes(64) == 256 * 2 * 2 * 2 * block
    assert cache.nbytes == runner.cache_bytes(64)


@pytest.mark.parametrize("cache_type", ["f16", "q8_0"])
def test_a_context_shift_rotates_the_kept_keys(tmp_path, backend, cache_type):
    """After dropping tokens the kept keys sit at new positions. In a model of one layer a
    token's key and value depend on the token and its position alone, so the shifted cache must
    answer as a fresh evaluation of the kept tokens does, and far from a cache left unrotated.
    (With more layers the kept tokens remember the dropped ones, in llama.cpp's shift too.)"""
    path = tmp_path / "llama.gguf"
    write_model(path, "llama", n_layers=1, n_embd=128, n_heads=2, n_kv_heads=1)
    runner = load(path, backend, kv_cache_type=cache_type)
    tokens = list(range(3, 43))
    cache = runner.new_cache(64)
    runner.forward([(cache, tokens)])
    keep, discard = 4, 18
    cache.shift(keep, discard)
    kept = tokens[:keep] + tokens[keep + discard :]
    assert cache.n_past == len(kept)
    shifted = runner.forward([(cache, [50])])[0]
    fresh = runner.forward([(runner.new_cache(64), kept + [50])])[0]
    np.testing.assert_allclose(shifted, fresh, atol=0.05 if cache_type == "f16" else 0.2)

    unrotated = runner.new_cache(64)
    runner.forward([(unrotated, tokens)])
    unrotated._rotate = None  # moved down but left at their old angles
    unrotated.shift(keep, discard)
    wrong = runner.forward([(unrotated, [50])])[0]
    assert np.abs(wrong - fresh).max() > 5 * np.abs(shifted - fresh).max()


def test_after_a_shift_new_positions_take_the_freed_cells_as_in_llamacpp(tmp_path, backend):
    """llama.cpp's shift leaves the kept rows in their cells and writes the next positions into
    the dropped ones' cells; flash attention sums cells in their order, so a quantized cache
    rounds as llama.cpp's after a shift only with the same order (q8_0 tokens parted from
    llama.cpp's otherwise)."""
    path = tmp_path / "llama.gguf"
    write_model(path, "llama", n_layers=1, n_embd=128, n_heads=2, n_kv_heads=1)
    runner = load(path, backend, kv_cache_type="q8_0")
    cache = runner.new_cache(64)
    runner.forward([(cache, list(range(3, 43)))])
    values = cache._rows(cache.values[0], cache.v_row[0], cache.cells[0]).copy()
    cache.shift(4, 18)
    runner.forward([(cache, [50, 51])])
    held = cache.cell_positions(False, cache.n_past)
    assert list(held[:4]) == [0, 1, 2, 3]  # the kept prefix where it was
    assert list(held[4:6]) == [22, 23]  # the new positions in the first freed cells
    assert list(held[22:40]) == list(range(4, 22))  # the moved rows left in their cells
    assert (held[6:22] == -1).all() and (held[40:] == -1).all()
    after = cache._rows(cache.values[0], cache.v_row[0], cache.cells[0])
    np.testing.assert_array_equal(after[22:40], values[22:40])
    assert cache.span(False, cache.n_past) == 256
    cache.truncate(23)  # position 23's cell is free again, and the next position takes it
    assert list(cache.write_cells(False, 23, 24)) == [5]


def test_a_prompt_stops_inside_its_step_when_asked(tmp_path, backend):
    path = tmp_path / "llama.gguf"
    write_model(path, "llama")
    runner = load(path, backend)
    cache = runner.new_cache(256)
    runner.forward([(cache, PROMPT)])
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) > 3  # a few operations in

    with pytest.raises(Cancelled):
        runner.forward([(cache, [t % VOCAB for t in range(200)])], should_stop=should_stop)
    assert len(asked) > 3 and cache.n_past == len(PROMPT)  # the cache holds what it held
    np.testing.assert_allclose(  # and goes on from there
        runner.forward([(cache, [4])])[0],
        runner.forward([(runner.new_cache(32), PROMPT + [4])])[0],
        atol=2e-3,
    )


def test_weights_stay_in_the_file_and_are_shared(tmp_path, backend):
    """No float32 copy of the weights: the runner's memory is the file's tensor bytes, and two
    models made from one file hold one mapping of it."""
    path = tmp_path / "llama.gguf"
    write_model(path, "llama")
    first, second = load(path, backend), load(path, backend)
    assert first.weights is second.weights
    tensor_bytes = sum(info.nbytes for info in first.weights.infos.values())
    assert first.memory_bytes == tensor_bytes
    cache = first.new_cache(16)
    assert first.memory_bytes == tensor_bytes + cache.nbytes


PROJECTIONS = tuple(
    f"{name}.weight"
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
)


def test_projections_moved_onto_huge_pages_answer_the_same(tmp_path, backend, monkeypatch):
    """The quantized and float16 projections of a huge page or more are copied off the mapping
    (onto huge pages): every one here, with the size lowered. The logits are the same bit for bit, and the
    runner's memory is the same: the copies replace the file's pages, they do not add to them."""
    import shutil

    from ollamakit_engine import graph_weights

    path = write_quantized_model(tmp_path, "Q8_0")  # a type ggml does not repack
    mapped = load(path, backend)
    assert mapped.weights.settled is None  # the tiny matrices are far below a huge page
    monkeypatch.setattr(graph_weights, "HUGE_PAGE", 1)
    monkeypatch.setattr(graph_weights, "COPY_PIECE", 1000)  # many pieces, edges inside pages
    copy = tmp_path / "copy.gguf"  # another file: not the mapping loaded above
    shutil.copy(path, copy)
    moved = load(copy, backend)

    start = moved.weights._bytes.ctypes.data
    stop = start + moved.weights.file_size
    from ollamakit.lib.ggml import lib as L

    for name in (f"blk.{i}.{p}" for i in range(2) for p in PROJECTIONS):
        assert not start <= L.tensor(moved.weights.by_name[name]).data < stop, name
    for name in ("token_embd.weight", "output.weight"):  # rows read; float32 (BERT's panels)
        assert start <= L.tensor(moved.weights.by_name[name]).data < stop, name
    assert moved.memory_bytes == mapped.memory_bytes

    rng = np.random.default_rng(5)
    prompt = [int(t) for t in rng.integers(0, VOCAB, 12)]
    caches = mapped.new_cache(32), moved.new_cache(32)
    a, b = (runner.forward([(c, prompt)])[0] for runner, c in zip((mapped, moved), caches))
    assert np.array_equal(a, b)
    for token in (3, 50, 7):
        a, b = (runner.forward([(c, [token])])[0] for runner, c in zip((mapped, moved), caches))
        assert np.array_equal(a, b)


def write_quantized_model(folder, ggml_type: str = "Q4_1"):
    """The tiny llama with every layer projection quantized to ``ggml_type``."""
    from ollamakit_quant.encode import encode

    # K-quants' blocks are 256 values long: every product's width a multiple of them
    sizes = dict(n_embd=256, n_ff=512) if ggml_type.endswith("_K") else {}
    meta, tensors = write_model(folder / "f32.gguf", "llama", **sizes)
    quantized = {
        name: (
            encode(np.ascontiguousarray(w).view(np.uint8).reshape(-1), "F32", ggml_type),
            ggml_type,
            w.shape[::-1],
        )
        if name.endswith(PROJECTIONS)
        else w
        for name, w in tensors.items()
    }
    return make_gguf(folder / f"{ggml_type.lower()}.gguf", meta, quantized)


def test_long_prompts_multiply_row_at_a_time_types_in_float32(tmp_path, backend):
    """Q4_1 has no tiled kernel in ggml, so with fast prefill a prompt step of DENSE_MIN_ROWS rows
    or more multiplies a float32 copy of those matrices: close to the blocks' own product (which
    rounds the activations to 8 bits), and never used for fewer rows."""
    from ollamakit_engine.graph_model import DENSE_MIN_ROWS

    path = write_quantized_model(tmp_path)
    dense, blocks = load(path, backend, fast_prefill=True), load(path, backend)
    assert len(dense.model.dense) == 7 * 2  # every projection of both layers
    assert not blocks.model.dense  # llama.cpp's own products unless fast prefill is asked for

    prompt = [int(t) for t in np.random.default_rng(1).integers(0, VOCAB, DENSE_MIN_ROWS + 8)]
    a = dense.forward([(dense.new_cache(64), prompt)])[0]
    b = blocks.forward([(blocks.new_cache(64), prompt)])[0]
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(b).max())
    short = prompt[: DENSE_MIN_ROWS - 1]
    assert np.array_equal(
        dense.forward([(dense.new_cache(64), short)])[0],
        blocks.forward([(blocks.new_cache(64), short)])[0],
    )


def kernels(backend):
    """ollamakit's own kernels, which ``ollamakit build-ggml`` builds on x86 CPUs with AVX2, FMA
    and F16C (scripts/test.sh runs it); other CPUs multiply with ggml's products only."""
    from ollamakit.lib.ggml.native import _cpu_flags

    if not {"avx2", "fma", "f16c"} <= _cpu_flags():
        pytest.skip("ollamakit's kernels are built for x86 CPUs with AVX2, FMA and F16C")
    assert backend.lib.kernels is not None, "run `ollamakit build-ggml` to build the kernels"
    return backend.lib.kernels


KERNEL_TYPES = ("Q4_1", "Q5_1", "Q8_0", "Q5_0", "Q6_K", "Q4_K")


@pytest.mark.parametrize("ggml_type", KERNEL_TYPES)
def test_the_kernels_give_ggml_products_bit_for_bit(backend, ggml_type):
    """Every shape of tile the kernel has (full tiles, odd rows, 1 to 3 spare columns), against
    ggml's own product on the same inputs (vec_dot for Q4_1, Q5_1 and Q6_K, llamafile's tinyBLAS for
    Q8_0 and Q5_0, the repacked gemm and gemv for Q4_K, whose weights lie repacked as the engine
    loads them), compared as bits, for every width of step the engine gives the kernel (from one
    row where the kernel takes single rows) and the widths just outside."""
    from ollamakit_engine.graph_model import GraphTransformer
    from ollamakit_quant.encode import encode

    from ollamakit.lib.ggml import lib as L
    from ollamakit.lib.ggml.graph import Compute, Tensors, array

    kernels(backend)
    lib, rng = backend.lib, np.random.default_rng(7)
    weight_type = getattr(L, f"TYPE_{ggml_type}")
    kernel = lib.kernels.products[weight_type]
    width = 768 if ggml_type.endswith("_K") else 96  # three blocks a row
    # an odd number of rows; for a repacked weight, an odd number of ggml's groups of 8 rows
    count = 40 if kernel.repacked else 37
    weights = rng.standard_normal((count, width)).astype(np.float32)
    weights[rng.integers(0, count, 4), rng.integers(0, width, 4)] *= 30  # outlier weights
    blocks = encode(weights.view(np.uint8).reshape(-1), "F32", ggml_type)
    model = GraphTransformer.__new__(GraphTransformer)  # only its product is used here
    compute = Compute(lib, backend.threadpool(2), 2)
    most = kernel.most_rows or 40
    widths = [r for r in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 40) if kernel.fewest_rows <= r <= most]
    assert widths[0] == kernel.fewest_rows and widths[-1] == most
    left_to_ggml = [r for r in (kernel.fewest_rows - 1, most + 1) if r > 0 and r <= 40]
    for rows in widths + left_to_ggml:
        weights_memory, tensors = Tensors(lib, 1), Tensors(lib, 1)
        w, x = weights_memory.new(weight_type, width, count), tensors.new(L.TYPE_F32, width, rows)
        weights_memory.allocate(lib.repack_buffer_type() if kernel.repacked else None)
        tensors.allocate()
        lib.ggml_backend_tensor_set(w, blocks.ctypes.data, 0, blocks.nbytes)
        repacked = frozenset([w] if kernel.repacked else [])
        model.kernels, model.t = lib.kernels, type("T", (), {"repacked": repacked})()
        activations = rng.standard_normal((rows, width)).astype(np.float32)
        activations[:, rng.integers(0, width, 3)] *= 40  # outliers, as real activations have
        array(x, L.TYPE_F32, (rows, width))[...] = activations
        products = []
        for ours in (True, False):
            step = compute.step(16)
            out = step.output(model._product(step, w, x) if ours else step.op("mul_mat", w, x))
            used = L.tensor(out).op != L.tensor(step.op("mul_mat", w, x)).op
            assert used == (ours and rows in widths), rows  # whose product
            compute.run(step)
            products.append(compute.read(out, rows, count))
            step.close()
        assert np.array_equal(products[0].view(np.uint32), products[1].view(np.uint32)), rows
        tensors.close()
        weights_memory.close()


def test_the_q8_0_kernel_keeps_tinyblas_sums_at_byte_extremes(backend):
    """Weight and activation bytes of -128, which tinyBLAS's sign flips wrap (a -128 activation
    under a negative weight): the kernel gives tinyBLAS's bits there too. ggml never rounds a
    finite activation to -128, so the activations are written as Q8_0 blocks directly, which ggml
    then multiplies with tinyBLAS as they are."""
    import ctypes

    from ollamakit.lib.ggml import lib as L
    from ollamakit.lib.ggml.graph import Compute, Tensors

    kernels(backend)
    lib, rng = backend.lib, np.random.default_rng(11)
    kernel = lib.kernels.products[L.TYPE_Q8_0]
    width, count, rows = 128, 13, 5

    def q8_0_blocks(n, extremes):
        values = rng.integers(-127, 128, (n, width // 32, 32)).astype(np.int8)
        values.reshape(-1)[rng.integers(0, values.size, extremes)] = -128
        scales = (rng.random((n, width // 32, 1)) * 0.02 + 1e-3).astype(np.float16)
        return np.concatenate([scales.view(np.int8), values], axis=2)

    compute = Compute(lib, backend.threadpool(2), 2)
    for extremes_w, extremes_x in ((40, 0), (0, 40), (40, 40)):
        w_blocks, x_blocks = q8_0_blocks(count, extremes_w), q8_0_blocks(rows, extremes_x)
        tensors = Tensors(lib, 2)
        w, x = tensors.new(L.TYPE_Q8_0, width, count), tensors.new(L.TYPE_Q8_0, width, rows)
        tensors.allocate()
        lib.ggml_backend_tensor_set(w, w_blocks.ctypes.data, 0, w_blocks.nbytes)
        lib.ggml_backend_tensor_set(x, x_blocks.ctypes.data, 0, x_blocks.nbytes)
        products = []
        for ours in (True, False):
            step = compute.step(16)
            args = (ctypes.c_void_p * 2)(w, x)
            mine = ("custom_4d", L.TYPE_F32, count, rows, 1, 1, args, 2, kernel.function, -1, None)
            out = step.output(step.op(*mine) if ours else step.op("mul_mat", w, x))
            compute.run(step)
            products.append(compute.read(out, rows, count))
            step.close()
        assert np.array_equal(products[0].view(np.uint32), products[1].view(np.uint32))
        tensors.close()


@pytest.mark.parametrize("ggml_type", KERNEL_TYPES)
def test_models_answer_the_same_with_the_kernels(tmp_path, backend, ggml_type):
    """The kernels only make products sooner: prompts of any length, and several sequences
    decoding together, give the same logits with them and without them, bit for bit."""
    from ollamakit.lib.ggml import lib as L

    kernels(backend)
    path = write_quantized_model(tmp_path, ggml_type)
    with_kernel, without = load(path, backend), load(path, backend)
    without.model.kernels = None
    weight = with_kernel.model.t.layers[0].wq  # (Q4_K: as ggml repacked it)
    step = with_kernel.compute.step(16)
    x = step.input(np.zeros((4, L.tensor(weight).ne[0]), np.float32))
    used = L.tensor(with_kernel.model._product(step, weight, x)).op
    assert used != L.tensor(step.op("mul_mat", weight, x)).op  # the kernel's product
    step.close()
    rng = np.random.default_rng(3)
    for length in (2, 5, 11, 40):
        prompt = [int(t) for t in rng.integers(0, VOCAB, length)]
        a = with_kernel.forward([(with_kernel.new_cache(64), prompt)])[0]
        b = without.forward([(without.new_cache(64), prompt)])[0]
        assert np.array_equal(a, b), length
    caches = [(with_kernel.new_cache(64), without.new_cache(64)) for _ in range(8)]
    for token, width in ((4, 5), (9, 8), (2, 2), (6, 7)):  # whole tiles of 4 and spare columns
        a = with_kernel.forward([(c, [token + i]) for i, (c, _) in enumerate(caches[:width])])
        b = without.forward([(c, [token + i]) for i, (_, c) in enumerate(caches[:width])])
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), width


def test_a_kernel_that_fails_its_check_leaves_ggml_products(tmp_path, backend, monkeypatch):
    """The engine asks for a kernel when it builds a step; where the kernel's check on this
    machine fails, the graph keeps ggml's product and the logits are the engine's without
    kernels, bit for bit (tests/lib/ggml/test_kernel_check.py: what fails the check)."""
    from ollamakit.lib.ggml import check
    from ollamakit.lib.ggml import lib as L

    real = kernels(backend)
    asked = []
    monkeypatch.setattr(check, "agrees", lambda *args: asked.append(args[1]) or False)
    path = write_quantized_model(tmp_path, "Q4_1")
    failing = L.Kernels(real.handle, backend.lib)
    checked, plain = load(path, backend), load(path, backend)
    checked.model.kernels, plain.model.kernels = failing, None
    prompt = [5, 17, 3, 88, 42, 9, 61]
    for _ in range(2):
        a = checked.forward([(checked.new_cache(32), prompt)])[0]
        b = plain.forward([(plain.new_cache(32), prompt)])[0]
        assert np.array_equal(a, b)
    assert asked == [L.TYPE_Q4_1]  # once, at the first step
    weight = checked.model.t.layers[0].wq  # a Q4_1 matrix, several rows: the kernel's case
    step = checked.compute.step(16)
    x = step.input(np.zeros((4, L.tensor(weight).ne[0]), np.float32))
    kept = L.tensor(checked.model._product(step, weight, x))
    assert (kept.op, kept.src[1]) == (L.tensor(step.op("mul_mat", weight, x)).op, x)
    step.close()


def test_a_context_between_blocks_attends_as_one_rounded_up(tmp_path, backend):
    """llama.cpp rounds its context up to 256 cells and attends over the written cells rounded
    up to 256; with two threads, flash attention over 512 cells or more splits its sums by
    thread, so a span cut at ``num_ctx`` instead would sum in other groups and part from
    llama.cpp's bits once decoding passes the last whole block. A context of 600 must decode
    exactly as one of 768."""
    from ollamakit_engine.graph_cache import KV_BLOCK

    path = tmp_path / "m.gguf"
    write_model(path, "llama", n_layers=1)
    runner = load(path, backend, num_thread=2)
    prompt = [int(t) for t in np.random.default_rng(5).integers(0, VOCAB, 2 * KV_BLOCK + 3)]
    answers = []
    for num_ctx in (600, 3 * KV_BLOCK):
        cache = runner.new_cache(num_ctx)
        logits = [runner.forward([(cache, prompt)])[0]]
        for token in (4, 9, 2):
            logits.append(runner.forward([(cache, [token])])[0])
        assert cache.span(False, cache.n_past) == 3 * KV_BLOCK
        answers.append(np.stack(logits))
    assert np.array_equal(answers[0].view(np.uint32), answers[1].view(np.uint32))


def test_two_models_on_one_thread_pool_take_turns(tmp_path, backend):
    """Every model of a backend shares its ggml thread pool, which runs one graph at a time:
    two models stepping at once from two request threads must each get their own answers."""
    import threading

    path = tmp_path / "m.gguf"
    write_model(path, "llama")
    first, second = load(path, backend), load(path, backend)
    prompts = [PROMPT, PROMPT[::-1]]
    expected = [first.forward([(first.new_cache(64), p)])[0] for p in prompts]
    results, errors = {}, []

    def work(runner, index):
        try:
            for round in range(20):
                results[index, round] = runner.forward([(runner.new_cache(64), prompts[index])])[0]
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(runner, i)) for i, runner in enumerate((first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for (index, _), logits in results.items():
        assert np.array_equal(logits, expected[index])


@pytest.mark.real_model
@pytest.mark.parametrize(
    "name",
    [
        "smollm2_q4_1",
        "gemma3_270m",
        pytest.param("qwen25_coder_1_5b", marks=pytest.mark.large_model),
    ],
)
def test_real_models_decode_the_same_with_the_kernels(backend, name):
    """SmolLM2 (Q4_1 layers, a Q8_0 output matrix), Gemma 3 (Q5_0, Q8_0 and Q6_K layers, a Q8_0
    output matrix) and Qwen2.5-Coder (repacked Q4_K and Q6_K layers, a Q6_K output matrix): 2 to
    8 sequences decoding together give the same logits with ollamakit's kernels and without
    them, bit for bit."""
    from ollamakit.testing import models

    kernels(backend)
    path = getattr(models, name)()
    with_kernels, without = load(path, backend), load(path, backend)
    assert with_kernels.model.kernels is not None
    without.model.kernels = None
    prompts = [[int(t) for t in range(300 + 40 * i, 305 + 41 * i)] for i in range(8)]
    caches = [(with_kernels.new_cache(64), without.new_cache(64)) for _ in prompts]
    a = with_kernels.forward([(c, p) for (c, _), p in zip(caches, prompts)])
    b = without.forward([(c, p) for (_, c), p in zip(caches, prompts)])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for step in range(14):
        width = 2 + step % 7
        tokens = [[int(np.argmax(logits))] for logits in a[:width]]
        a = with_kernels.forward([(c, t) for (c, _), t in zip(caches, tokens)]) + a[width:]
        b = without.forward([(c, t) for (_, c), t in zip(caches, tokens)]) + b[width:]
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), step
