"""What the commands print: sizes, times, tables, the show summary, progress, server address."""

import io
from datetime import datetime, timedelta, timezone

import pytest
from ollamakit_cli.client import server_url
from ollamakit_cli.formatting import human_bytes, human_number, human_time, parse_time, table
from ollamakit_cli.listing import model_rows
from ollamakit_cli.progress import Progress
from ollamakit_cli.show import summary


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_000_000, "98 MB"),
        (2_500_000_000, "2.5 GB"),
        (10**13, "10 TB"),
    ],
)
def test_human_bytes(size, text):
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    "count, text",
    [
        (999, "999"),
        (12_345, "12K"),
        (135_000_000, "135M"),
        (134_515_008, "134.52M"),
        (1_500_000_000, "1.5B"),
        (7 * 10**9, "7B"),
    ],
)
def test_human_number(count, text):
    assert human_number(count) == text


NOW = datetime(2025, 5, 10, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "delta, text",
    [
        (timedelta(seconds=0.2), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=42), "42 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(minutes=70), "About an hour ago"),
        (timedelta(hours=30), "30 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=90), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (timedelta(minutes=-4, seconds=-30), "4 minutes from now"),
    ],
)
def test_human_time(delta, text):
    assert human_time((NOW - delta).isoformat(), now=NOW) == text


def test_times_as_the_api_writes_them():
    # Nanoseconds and a local offset (modified_at), or Z (created_at).
    assert parse_time("2025-05-10T05:00:00.123456789-07:00") == datetime(
        2025, 5, 10, 12, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert parse_time("2025-05-10T12:00:00Z") == NOW
    assert parse_time("garbage") is None
    assert human_time("", never="Never") == "Never"
    assert human_time("0001-01-01T00:00:00Z") == "Never"


def test_table_pads_columns_and_strips_line_ends():
    assert table([["a", "bbb"], ["cc", "d"]], ["X", "Y"]) == "X     Y\na     bbb\ncc    d"
    assert table([["", "k", "v"]]) == "    k    v"


def test_list_rows_filter_by_prefix_case_insensitively():
    models = [
        {
            "name": "Smol:latest",
            "digest": "a" * 64,
            "size": 98_000_000,
            "modified_at": datetime.now(timezone.utc).isoformat(),
        },
        {"name": "other:v1", "digest": "b" * 64, "size": 1500, "modified_at": ""},
    ]
    assert model_rows(models) == [
        ["Smol:latest", "a" * 12, "98 MB", "Less than a second ago"],
        ["other:v1", "b" * 12, "1.5 KB", "Never"],
    ]
    assert [row[0] for row in model_rows(models, "smol")] == ["Smol:latest"]


SHOW = {
    "details": {"family": "llama", "parameter_size": "134.52M", "quantization_level": "Q4_1"},
    "model_info": {
        "general.architecture": "llama",
        "llama.context_length": 8192,
        "llama.embedding_length": 576,
    },
    "capabilities": ["completion"],
    "parameters": 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"\ntemperature                    0.2',
    "system": "You are a helpful assistant.\n\nBe brief.\nAnd kind.",
    "license": "Apache License 2.0",
}


def test_show_summary_has_ollamas_sections():
    assert summary(SHOW) == (
        "  Model\n"
        "    architecture        llama\n"
        "    parameters          134.52M\n"
        "    context length      8192\n"
        "    embedding length    576\n"
        "    quantization        Q4_1\n"
        "\n"
        "  Capabilities\n"
        "    completion\n"
        "\n"
        "  Parameters\n"
        '    stop           "<|im_start|>"\n'
        '    stop           "<|im_end|>"\n'
        "    temperature    0.2\n"
        "\n"
        "  System\n"
        "    You are a helpful assistant.\n"
        "    Be brief.\n"
        "    ...\n"
        "\n"
        "  License\n"
        "    Apache License 2.0\n"
        "\n"
    )


def test_show_summary_without_model_info_uses_details():
    text = summary(
        {
            "details": {"family": "bert", "parameter_size": "22M", "quantization_level": "F16"},
            "model_info": None,
        }
    )
    assert (
        "architecture    bert" in text
        and "parameters      22M" in text
        and "Capabilities" not in text
    )


def test_progress_off_a_terminal_prints_each_thing_once():
    out = io.StringIO()
    progress = Progress(out, interactive=False)
    progress.status("parsing GGUF")
    progress.status("parsing GGUF")
    bar = progress.bar("sha256:1", "copying file sha256:1", 2_000_000)
    for done in (500_000, 1_000_000, 2_000_000):
        bar.update(done)
    progress.status("success")
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "parsing GGUF" and lines[2] == "success" and len(lines) == 3
    assert lines[1].startswith("copying file sha256:1 100% ") and lines[1].endswith(" 2 MB/2 MB")


def test_progress_on_a_terminal_redraws_in_place():
    out = io.StringIO()
    progress = Progress(out, interactive=True)
    bar = progress.bar("d", "quantizing F16 model to Q4_K_M", 100)
    bar.update(50)
    progress.status("writing manifest")
    text = out.getvalue()
    assert "\rquantizing F16 model to Q4_K_M  50% " in text
    assert text.endswith("\nwriting manifest\n")  # the bar's line is ended before the status


@pytest.mark.parametrize(
    "value, url",
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("example.com:8080", "http://example.com:8080"),
        ("https://example.com", "https://example.com:443"),
        ("http://10.0.0.5", "http://10.0.0.5:80"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("'localhost:1234'", "http://localhost:1234"),
    ],
)
def test_server_url_from_ollama_host(value, url):
    assert server_url(value) == url


def test_show_verbose_adds_metadata_and_tensors():
    info = {
        **SHOW,
        "model_info": {
            **SHOW["model_info"],
            "tokenizer.ggml.tokens": ["a", "bb", "ccc", "dddd"],
            "general.flag": True,
        },
        "tensors": [{"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}],
    }
    assert "Metadata" not in summary(info)
    text = summary(info, verbose=True)
    assert "  Metadata\n" in text and "  Tensors\n" in text
    assert "    general.flag              true\n" in text
    assert "tokenizer.ggml.tokens     [a bb ...+2 more]" in text
    assert "    token_embd.weight    Q8_0    [576 49152]" in text
