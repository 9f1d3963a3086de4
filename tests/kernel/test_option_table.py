"""One table of Ollama's options: create's stored parameters and a request's options are typed
and bounded by the same ``ollamakit.options`` table."""

from dataclasses import fields

import pytest

from ollamakit.create import normalize_parameter
from ollamakit.errors import BadRequest
from ollamakit.options import PARAMETER_BOUNDS, PARAMETER_KINDS, Options, merged


def test_the_table_names_every_option():
    assert set(PARAMETER_KINDS) == {f.name for f in fields(Options)}
    assert PARAMETER_KINDS["stop"] is list and PARAMETER_KINDS["use_mmap"] is bool
    assert PARAMETER_KINDS["temperature"] is float and PARAMETER_KINDS["num_ctx"] is int


@pytest.mark.parametrize("name", sorted(PARAMETER_BOUNDS))
def test_create_and_requests_share_the_bounds(name):
    least, most = PARAMETER_BOUNDS[name]
    step = 1 if PARAMETER_KINDS[name] is int else 0.25
    for outside in [least - step] + ([most + step] if most is not None else []):
        with pytest.raises(BadRequest):
            normalize_parameter(name, outside)
        with pytest.raises(BadRequest):
            merged({}, {name: outside})
    for inside in [least] + ([most] if most is not None else []):
        assert normalize_parameter(name, inside) == inside
        assert getattr(merged({}, {name: inside}), name) == inside
