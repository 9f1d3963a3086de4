"""Ollama's environment variables, read as Ollama's ``envconfig`` reads them."""

from __future__ import annotations

import json
import logging
import math

import pytest

from ollamakit.config import Settings, parse_bool

ALL = (
    "OLLAMA_LOAD_TIMEOUT",
    "OLLAMA_DEBUG",
    "OLLAMA_NO_CLOUD",
    "OLLAMA_REMOTES",
    "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_MAX_QUEUE",
    "OLLAMA_NOPRUNE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ollama/server.json of the machine's


def test_booleans_follow_go_parse_bool_an_error_meaning_true():
    for value in ("0", "f", "F", "false", "FALSE", "False", " 'false' "):
        assert parse_bool(value) is False, value
    for value in ("1", "t", "true", "TRUE", "yes", "no", "off", "fAlse", "2"):
        assert parse_bool(value) is True, value
    assert (
        parse_bool("") is False
        and parse_bool(None) is False
        and parse_bool("", default=True) is True
    )


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("90", 90.0),
        ("2.5s", 2.5),
        ("'45s'", 45.0),
        ("0", math.inf),
        ("-1", math.inf),
        ("-5m", math.inf),  # zero or negative: no limit
        ("soon", 300.0),
        ("", 300.0),  # unreadable: the default, five minutes
    ],
)
def test_load_timeout_is_a_duration(monkeypatch, value, seconds):
    monkeypatch.setenv("OLLAMA_LOAD_TIMEOUT", value)
    assert Settings.from_env().load_timeout == seconds


@pytest.mark.parametrize(
    "value,level",
    [
        ("1", logging.DEBUG),
        ("true", logging.DEBUG),
        ("2", 1),
        ("-1", logging.WARNING),
        ("-2", logging.ERROR),
        ("0", logging.INFO),
        ("false", logging.INFO),
        ("no", logging.INFO),
        ("", logging.INFO),
    ],
)
def test_debug_is_a_log_level(monkeypatch, value, level):
    monkeypatch.setenv("OLLAMA_DEBUG", value)
    settings = Settings.from_env()
    assert settings.log_level == level
    assert settings.debug == (level <= logging.DEBUG)


def test_unsigned_numbers_take_digits_only(monkeypatch):
    monkeypatch.setenv("OLLAMA_CONTEXT_LENGTH", "8192")
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "-3")
    settings = Settings.from_env()
    assert settings.context_length == 8192 and settings.max_queue == 512
    monkeypatch.setenv("OLLAMA_CONTEXT_LENGTH", "+8192")
    assert Settings.from_env().context_length == 0  # unset: chosen by memory (default_num_ctx)


def test_no_cloud_from_the_variable_or_ollamas_server_json(monkeypatch, tmp_path):
    assert Settings.from_env().no_cloud is False
    monkeypatch.setenv("OLLAMA_NO_CLOUD", "1")
    assert Settings.from_env().no_cloud is True
    monkeypatch.delenv("OLLAMA_NO_CLOUD")
    (tmp_path / ".ollama").mkdir()
    config = tmp_path / ".ollama" / "server.json"
    config.write_text(json.dumps({"disable_ollama_cloud": True}))
    assert Settings.from_env().no_cloud is True
    config.write_text("{not json")
    assert Settings.from_env().no_cloud is False


def test_remotes_are_a_comma_list(monkeypatch):
    assert Settings.from_env().remotes == ("ollama.com",)
    monkeypatch.setenv("OLLAMA_REMOTES", "ollama.com,example.org")
    assert Settings.from_env().remotes == ("ollama.com", "example.org")


def test_noprune_no_means_true_as_in_ollama(monkeypatch):
    monkeypatch.setenv("OLLAMA_NOPRUNE", "no")
    assert Settings.from_env().noprune is True
