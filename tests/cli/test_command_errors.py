"""Mistakes the commands catch on this side, before (or instead of) talking to a server."""

import os
import time

import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli
from ollamakit.testing.fixtures import free_port


def run(*args, host=None, cwd=None):
    # Nothing listens on this port: any request would fail with a connection error.
    env = {"OLLAMA_HOST": host or f"127.0.0.1:{free_port()}"}
    return CliRunner().invoke(build_cli(), list(args), env=env)


def test_invalid_model_name():
    result = run("create", "bad name!", "-f", "Modelfile")
    assert result.exit_code == 1 and result.stderr == "Error: invalid model name: bad name!\n"


def test_missing_modelfile(tmp_path):
    result = run("create", "m", "-f", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "Error: specified Modelfile wasn't found" in result.stderr


def test_bad_modelfile_fails_before_any_request(tmp_path):
    (tmp_path / "Modelfile").write_text("FROM x\nFORM y\n")
    result = run("create", "m", "-f", str(tmp_path / "Modelfile"))
    assert result.exit_code == 1
    assert result.stderr.startswith('Error: (line 2): command must be one of "from", "license"')


def test_bad_parameter_fails_with_its_line(tmp_path):
    (tmp_path / "Modelfile").write_text("FROM x\nPARAMETER num_ctx lots\n")
    result = run("create", "m", "-f", str(tmp_path / "Modelfile"))
    assert result.exit_code == 1 and "Error: (line 2): invalid int value [lots]" in result.stderr


def test_no_server_says_how_to_start_one(tmp_path):
    port = free_port()
    result = run("list", host=f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"could not connect to the ollamakit server at http://127.0.0.1:{port}" in result.stderr
    assert "ollamakit serve" in result.stderr


def test_show_takes_one_part_at_a_time():
    result = run("show", "m", "--system", "--template")
    assert result.exit_code == 2 and "only one of '--license', '--modelfile'" in result.stderr


def test_rm_needs_a_name():
    assert run("rm").exit_code == 2


def test_every_client_command_is_registered():
    help_text = CliRunner().invoke(build_cli(), ["--help"]).output
    for command in ("create", "list", "show", "cp", "rm", "serve", "plugins"):
        assert f"  {command} " in help_text
    assert "ls" not in help_text.split()  # the alias works but does not clutter the help


NOT_REGULAR = ["/dev/zero", "/dev/random", "fifo"]


def _special(tmp_path, name: str) -> str:
    if name != "fifo":
        return name
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody ever writes to it: opening it to read would wait for ever
    return str(fifo)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("keyword", ["FROM", "ADAPTER"])
@pytest.mark.parametrize("special", NOT_REGULAR)
def test_create_refuses_what_is_not_a_regular_file_at_once(tmp_path, keyword, special):
    path = _special(tmp_path, special)
    lines = ["FROM base", f"ADAPTER {path}"] if keyword == "ADAPTER" else [f"FROM {path}"]
    (tmp_path / "Modelfile").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    result = run("create", "m", "-f", str(tmp_path / "Modelfile"))
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"Error: (line {len(lines)}): {keyword} {path}: not a regular file\n"
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize("special", NOT_REGULAR)
def test_create_refuses_a_modelfile_that_is_not_a_regular_file(tmp_path, special):
    path = _special(tmp_path, special)
    result = run("create", "m", "-f", path)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is not a regular file; -f names a Modelfile\n"
