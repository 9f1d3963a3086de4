import pytest

from ollamakit.errors import BadRequest, OllamaError
from ollamakit import options as opts


def test_defaults_are_ollamas():
    o = opts.Options()
    assert (o.num_keep, o.seed, o.num_predict, o.top_k, o.top_p, o.min_p, o.typical_p) == (
        4,
        -1,
        -1,
        40,
        0.9,
        0.0,
        1.0,
    )
    assert (o.repeat_last_n, o.temperature, o.repeat_penalty, o.num_batch, o.stop) == (
        64,
        0.8,
        1.0,
        512,
        (),
    )


def test_merge_order_defaults_then_model_then_request():
    merged = opts.merged(
        {"temperature": 0.1, "top_k": 5, "stop": ["a", "b"]}, {"temperature": 0.7, "stop": ["c"]}
    )
    assert merged.temperature == 0.7 and merged.top_k == 5 and merged.stop == ("c",)


def test_integers_truncate_floats_and_nulls_are_skipped():
    merged = opts.merged({}, {"num_predict": 12.9, "top_k": None, "seed": 3})
    assert merged.num_predict == 12 and merged.top_k == 40 and merged.seed == 3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"top_p": "0.5"}, 'option "top_p" must be of type float32'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"num_ctx": [1]}, 'option "num_ctx" must be of type integer'),
        ({"num_ctx": float("nan")}, 'option "num_ctx" must be of type integer'),
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"stop": ["x", None]}, 'option "stop" must be of an array of strings'),
    ],
)
def test_type_errors_are_400s_in_ollamas_words(values, message):
    with pytest.raises(OllamaError) as info:
        opts.merged({}, values)
    assert info.value.status == 400 and info.value.message == message


@pytest.mark.parametrize(
    "values",
    [
        {"num_ctx": 0},
        {"top_k": -1},
        {"min_p": 2},
        {"typical_p": 0},
        {"repeat_penalty": -1},
        {"num_batch": 0},
        {"temperature": float("inf")},
        {"stop": [""]},
        {"num_keep": -2},
    ],
)
def test_impossible_values_are_400s(values):
    with pytest.raises(BadRequest):
        opts.merged({}, values)


def test_load_options_are_split_out():
    assert opts.load_options(opts.merged({}, {"num_ctx": 64}))["num_ctx"] == 64
    assert set(opts.load_options(opts.Options())) == set(opts.LOAD_OPTIONS)
