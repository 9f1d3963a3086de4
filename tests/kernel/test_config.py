"""``ollamakit.config``'s parsers: the address in ``OLLAMA_HOST`` and Go durations, with the
answers Ollama's ``envconfig`` gives for the same text."""

from __future__ import annotations

import math

import pytest

from ollamakit.cli.address import ollama_host_url, server_url
from ollamakit.config import DEFAULT_PORT, Settings, parse_duration, parse_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("127.0.0.1", DEFAULT_PORT)),
        ("1.2.3.4", ("1.2.3.4", DEFAULT_PORT)),
        ("1.2.3.4:1234", ("1.2.3.4", 1234)),
        ("example.com", ("example.com", DEFAULT_PORT)),
        ("example.com:1234", ("example.com", 1234)),
        (":66000", ("127.0.0.1", DEFAULT_PORT)),  # no such port: the default
        ("127.0.0.1:0", ("127.0.0.1", 0)),  # a free port, picked when the server listens
        ("http://127.0.0.1:0", ("127.0.0.1", 0)),
        (":-1", ("127.0.0.1", DEFAULT_PORT)),
        ("[::1]", ("::1", DEFAULT_PORT)),
        ("[::]", ("::", DEFAULT_PORT)),
        ("::1", ("::1", DEFAULT_PORT)),  # IPv6 without brackets
        ("[::1]:1337", ("::1", 1337)),
        (" 1.2.3.4 ", ("1.2.3.4", DEFAULT_PORT)),
        ('"1.2.3.4"', ("1.2.3.4", DEFAULT_PORT)),
        (' " 1.2.3.4 " ', ("1.2.3.4", DEFAULT_PORT)),  # spaces inside the quotes too
        ("'1.2.3.4'", ("1.2.3.4", DEFAULT_PORT)),
        ("http://1.2.3.4", ("1.2.3.4", 80)),
        ("http://1.2.3.4:4321", ("1.2.3.4", 4321)),
        ("https://1.2.3.4", ("1.2.3.4", 443)),
        ("https://1.2.3.4:4321", ("1.2.3.4", 4321)),
        ("https://example.com/ollama", ("example.com", 443)),  # a proxy's path is not the host
    ],
)
def test_host_forms(value, expected):
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),  # listening everywhere: reached on loopback
        ("::", "http://127.0.0.1:11434"),
        ("::1", "http://[::1]:11434"),
        ("https://example.com", "https://example.com:443"),
    ],
)
def test_the_clients_url_for_an_address(value, url):
    assert server_url(value) == url


@pytest.mark.parametrize(
    ("value", "host", "connectable"),
    [
        ("", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::]:9000", "http://[::]:9000", "http://[::1]:9000"),
        ("http://0.0.0.0", "http://0.0.0.0:80", "http://127.0.0.1:80"),
        ("https://proxy.example/ollama", "https://proxy.example:443/ollama", None),
        ("ollama.com", "https://ollama.com:443", None),
        ("example.com:11500", "http://example.com:11500", None),
    ],
)
def test_the_url_launch_hands_a_tool(value, host, connectable):
    """Ollama's ``envconfig.Host()`` and ``ConnectableHost()``: only the second turns a
    listen-everywhere address into loopback."""
    assert ollama_host_url(value) == host
    assert ollama_host_url(value, connectable=True) == (connectable or host)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1m", 60.0),
        ("1h2m3s", 3723.0),
        ("5m0s", 300.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("0", 0.0),
        ("-0", 0.0),
        ("-1m", math.inf),  # negative: forever
        (-1, math.inf),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", " ", "???", "1d", "1w", "5", "1h 2m", "m", "1.2.3s", "s1"])
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}])
def test_a_duration_of_another_type_is_refused(value):
    with pytest.raises(ValueError, match="Unsupported type"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("env", "seconds"),
    [
        (None, 300.0),
        ("1h", 3600.0),
        ("60", 60.0),  # whole seconds
        ("-1", math.inf),
        ("0", 0.0),
        ("???", 300.0),  # unreadable: the default
        ("1d", 300.0),
    ],
)
def test_keep_alive_from_the_environment(monkeypatch, env, seconds):
    if env is None:
        monkeypatch.delenv("OLLAMA_KEEP_ALIVE", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_KEEP_ALIVE", env)
    assert Settings.from_env().keep_alive == seconds


def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", "1.2.3.4:1234")
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "env"))
    settings = Settings.from_env(host="::1", models_dir=tmp_path / "flag", storage=None)
    assert (settings.host, settings.port) == ("::1", 1234)
    assert str(settings.models_dir) == str(tmp_path / "flag")
    assert settings.storage == "fs"  # a flag left out (None) keeps the default
