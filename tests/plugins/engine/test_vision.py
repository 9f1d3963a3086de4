"""The gemma3 vision tower on ggml against llama.cpp's mtmd: the image embeddings
(``mtmd_get_output_embd``) and the greedy answer after a prompt with an image, for the fixture
tower on Gemma 3 270M. Live with llama-cpp-python when installed; otherwise against answers
recorded on this machine kind (``tests/reference/llamacpp-vision.json``, CPU beside them)."""

from __future__ import annotations

import importlib.util
import types
from functools import lru_cache

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_engine.vision import attach_vision
from ollamakit_engine.vision_tower import VisionTower, vision_config
from ollamakit_ggml import GgmlBackend

from ollamakit.images import ImageToken
from ollamakit.testing import agreement, models
from ollamakit.testing import vision as fixtures
from ollamakit.testing import vision_agreement as va
from ollamakit.testing.gguf_factory import make_gguf
from ollamakit.testing.reference import reference_answers
from ollamakit.inference.prompting import prompt_tokens

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
LIVE = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("vision")


@pytest.fixture(scope="module")
def projector(folder):
    return va.fixture_projector(folder)


@pytest.fixture(scope="module")
def cases(folder):
    return va.cases(folder)


@lru_cache(maxsize=3)
def _loaded(model: str, projector: str):
    runner = load_runner(model, GgmlBackend(), {"num_thread": 2})
    attach_vision(runner, projector)
    return runner


def _runner(projector: str):
    return _loaded(str(models.gemma3_270m()), projector)


_live: dict = {}


def reference(cases, name: str) -> dict:
    if LIVE:
        if name not in _live:
            model, mmproj, prompt, make = cases[name]
            _live[name] = va.answer(model, mmproj, prompt, make())
        return _live[name]
    recorded = reference_answers(va.RECORDED)
    here = agreement.cpu()
    if recorded["cpu"]["flags"] != here["flags"] or recorded["cpu"]["machine"] != here["machine"]:
        pytest.fail(
            f"the recorded answers come from a CPU with {recorded['cpu']['flags']}; this one has {here['flags']}: "
            f"install llama-cpp-python=={agreement.LLAMA_CPP_VERSION} to compare live"
        )
    case = dict(recorded["cases"][name])
    case["embeddings"] = np.asarray(case["embeddings"], np.float32)
    return case


CASES = [
    "gemma3/pattern",
    "gemma3/red",
    "llava/pattern",
    # LLaVA 1.6: a 2x2 grid, a 3x1 grid letterboxed, the overview alone, two feature layers
    "llava16/pattern",
    "llava16/wide",
    "llava16/small",
    "llava16/stacked",
]


@pytest.mark.parametrize("name", CASES)
def test_image_embeddings_match_mtmd(cases, name):
    model, mmproj, _, make = cases[name]
    ours = _loaded(model, mmproj).vision.encode(make()).embeddings
    theirs = np.asarray(reference(cases, name)["embeddings"])
    assert ours.shape == theirs.shape
    # float16 keys and values in both towers' attention; two ggml builds' summation orders
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(theirs).max()


@pytest.mark.parametrize("name", CASES)
def test_greedy_answer_with_an_image_matches_llamacpp(cases, name):
    model, mmproj, prompt, make = cases[name]
    runner = _loaded(model, mmproj)
    expected = reference(cases, name)
    lease = types.SimpleNamespace(
        tokenizer=runner.tokenizer, runner=runner, num_ctx=agreement.NUM_CTX
    )
    tokens = prompt_tokens(lease, prompt, [make()])
    assert [-1 if isinstance(t, ImageToken) else int(t) for t in tokens] == expected["prompt_ids"]
    ours = agreement.ours_greedy(runner, tokens, len(expected["greedy_ids"]))
    step, margin = agreement.parting(ours, expected["greedy_ids"], expected["margins"])
    assert step is None or margin < agreement.TIE_MARGIN, (
        ours,
        expected["greedy_ids"],
        step,
        margin,
    )


def test_the_image_changes_the_answer(projector):
    """Two pictures, two different next-token distributions: the image reaches the model."""
    runner = _runner(projector)
    lease = types.SimpleNamespace(
        tokenizer=runner.tokenizer, runner=runner, num_ctx=agreement.NUM_CTX
    )
    logits = []
    for name in sorted(va.IMAGES):
        cache = runner.new_cache(agreement.NUM_CTX)
        logits.append(
            runner.forward([(cache, prompt_tokens(lease, va.PROMPT, [va.IMAGES[name]()]))])[0]
        )
    assert np.abs(logits[0] - logits[1]).max() > 0.1


def _tower(path, lib):
    from ollamakit_engine.graph_weights import MappedWeights
    from ollamakit.lib.gguf.reader import GGUFFile

    with GGUFFile.open(path) as gguf:
        return VisionTower(vision_config(gguf.metadata), MappedWeights.open(gguf, lib), 640, lib)


def test_ollama_layout_and_swapped_feed_forward_names_give_the_same_tower(tmp_path, projector):
    """Ollama's in-model names (keys gemma3.vision.*) and an mmproj whose ffn_up/ffn_down names
    are swapped load into the same tower: the shapes decide."""
    runner = _runner(projector)
    tensors = fixtures.gemma3_tower(640)
    ollama = make_gguf(
        tmp_path / "ollama.gguf",
        {
            "general.architecture": "gemma3",
            "gemma3.embedding_length": 640,
            "gemma3.vision.block_count": 2,
            "gemma3.vision.embedding_length": 128,
            "gemma3.vision.feed_forward_length": 256,
            "gemma3.vision.image_size": 112,
            "gemma3.vision.patch_size": 14,
            "gemma3.vision.attention.head_count": 4,
            "gemma3.vision.attention.layer_norm_epsilon": 1e-6,
        },
        fixtures.ollama_names(tensors),
    )
    swapped = {
        name.replace("ffn_up", "ffn_UP")
        .replace("ffn_down", "ffn_up")
        .replace("ffn_UP", "ffn_down"): value
        for name, value in tensors.items()
    }
    legacy = fixtures.gemma3_mmproj(tmp_path / "legacy.gguf", 640, tensors=swapped)
    pixels = np.random.default_rng(1).uniform(-1, 1, (3, 112, 112)).astype(np.float32)
    expected = runner.vision.tower.encode(runner.compute, pixels)
    for path in (ollama, legacy):
        got = _tower(path, runner.lib).encode(runner.compute, pixels)
        np.testing.assert_array_equal(got, expected)


def test_an_image_is_encoded_once_per_content(projector):
    runner = _runner(projector)
    image = fixtures.solid_png((1, 2, 3))
    before = runner.vision.encoded
    first = runner.vision.encode(image)
    again = runner.vision.encode(bytes(image))
    assert again is first and runner.vision.encoded == before + 1


def test_ollamas_one_file_gemma3_sees_as_the_pair_does(tmp_path, projector):
    """Ollama's gemma3 keeps the tower in the model GGUF (Ollama's names, gemma3.vision.* keys):
    the runner finds it there and answers as the model + mmproj pair does."""
    pair = _runner(projector)
    combined = fixtures.ollama_gemma3(
        tmp_path / "gemma3-ollama.gguf", models.gemma3_270m(), fixtures.gemma3_tower(640)
    )
    runner = load_runner(combined, GgmlBackend(), {"num_thread": 2})
    attach_vision(runner, None)
    assert runner.vision is not None and runner.vision.begin == "<start_of_image>"
    image = va.IMAGES["pattern"]()
    np.testing.assert_array_equal(
        runner.vision.encode(image).embeddings, pair.vision.encode(image).embeddings
    )
    lease = types.SimpleNamespace(
        tokenizer=runner.tokenizer, runner=runner, num_ctx=agreement.NUM_CTX
    )
    tokens = prompt_tokens(lease, va.PROMPT, [image])
    assert agreement.ours_greedy(runner, tokens, 4) == agreement.ours_greedy(pair, tokens, 4)


def test_a_client_that_leaves_stops_the_encoding(projector):
    from ollamakit.errors import Cancelled

    runner = _runner(projector)
    image = fixtures.solid_png((9, 8, 7))
    with pytest.raises(Cancelled):
        runner.vision.encode(image, should_stop=lambda: True)
    assert runner.vision.encode(image).embeddings.shape == (4, 640)  # nothing kept half-done


def test_other_sequences_decode_while_an_image_is_encoded(tmp_path):
    """The tower runs stage by stage on a compute of its own: a sequence that is decoding keeps
    taking steps while another request's image goes through the tower, instead of waiting for
    the whole image (which holding the runner's lock for the encoding would make it do)."""
    import threading

    from ollamakit.testing.gguf_factory import tiny_llama

    text = tiny_llama(tmp_path / "tiny.gguf", context_length=512)
    mmproj = fixtures.gemma3_mmproj(
        tmp_path / "wide.gguf", 64, blocks=6, width=384, heads=6, ff=1536, image_size=448
    )
    runner = load_runner(str(text), GgmlBackend(), {"num_thread": 2})
    try:
        attach_vision(runner, str(mmproj))
        cache = runner.new_cache(512)
        runner.forward([(cache, [5, 6, 7])])
        in_tower, done, result = threading.Event(), threading.Event(), {}

        def stop_never():
            in_tower.set()  # asked between the tower's operations: it is running
            return False

        def encode():
            try:
                result["image"] = runner.vision.encode(
                    fixtures.pattern_png((448, 448)), should_stop=stop_never
                )
            finally:
                done.set()

        worker = threading.Thread(target=encode)
        worker.start()
        assert in_tower.wait(120)
        steps = 0
        while not done.is_set() and cache.n_past < 500:
            runner.forward([(cache, [8 + steps % 200])])
            steps += 1
        worker.join(120)
        assert result["image"].embeddings.shape == (64, 64)
        assert steps >= 3, f"only {steps} decode step(s) while the image was encoded"
    finally:
        runner.close()
