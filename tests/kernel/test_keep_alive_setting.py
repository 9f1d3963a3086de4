"""``OLLAMA_KEEP_ALIVE`` read as Ollama's envconfig.KeepAlive reads it: ``time.ParseDuration``,
else ``strconv.ParseInt`` seconds, else five minutes; negative is forever."""

import math

import pytest

from ollamakit.config import Settings


@pytest.mark.parametrize(
    "value, seconds",
    [
        (None, 300.0),
        ("", 300.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("+5", 5.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("-1", math.inf),
        ("-1m", math.inf),
        ("'10m'", 600.0),
        ("5.5", 300.0),
        ("ten", 300.0),
        ("10 m", 300.0),
    ],
)
def test_keep_alive_from_the_environment(monkeypatch, value, seconds):
    if value is None:
        monkeypatch.delenv("OLLAMA_KEEP_ALIVE", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_KEEP_ALIVE", value)
    assert Settings.from_env().keep_alive == seconds
