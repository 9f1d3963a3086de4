import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli
from ollamakit.testing.gguf_factory import tiny_llama


class Cli:
    """Runs ``ollamakit`` commands in-process against the server at ``url``."""

    def __init__(self, url: str):
        self.url = url
        self.app = build_cli()

    def __call__(self, *args: str, ok: bool = True):
        result = CliRunner().invoke(self.app, list(args), env={"OLLAMA_HOST": self.url})
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if ok:
            assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def cli(server):
    return Cli(server.url)


@pytest.fixture
def tiny_gguf(tmp_path):
    return tiny_llama(
        tmp_path / "tiny.gguf", n_layers=1, n_embd=32, n_heads=2, n_kv_heads=1, n_ff=64
    )
