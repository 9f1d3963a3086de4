"""Start-up stays cheap: loading every plugin and building the command group, which each
``ollamakit`` command does first (``--help`` included), imports none of the heavy libraries.
Plugins import them in their hooks (``DEFERRED_IMPORTS``); benchmarks/bench_startup.py times it."""

import json
import subprocess
import sys

HEAVY = (
    "falcon",
    "gguf",
    "httpx",
    "jinja2",
    "llguidance",
    "numpy",
    "safetensors",
    "stevedore",
    "waitress",
    "yaml",
)

BUILD_CLI = """
import json, sys
from ollamakit.cli import build_cli
from ollamakit.plugins import make_plugin_manager
pm = make_plugin_manager(skip=tuple(sys.argv[1:]))
build_cli(pm)
print(json.dumps({"modules": sorted(sys.modules), "plugins": [name for name, _ in pm.list_name_plugin()]}))
"""


def imported_by_build_cli(*skip: str) -> dict:
    # a fresh interpreter: this one has imported everything already
    result = subprocess.run(
        [sys.executable, "-c", BUILD_CLI, *skip], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_building_the_cli_imports_no_heavy_library():
    found = imported_by_build_cli()
    assert {"cli", "engine", "ggml", "openai", "ollama_api", "scheduler"} <= set(found["plugins"])
    heavy = {name.split(".")[0] for name in found["modules"]} & set(HEAVY)
    assert not heavy, f"imported while building the CLI: {sorted(heavy)}"


def test_a_kernel_imports_what_the_plugins_deferred():
    from ollamakit.kernel import make_kernel

    kernel = make_kernel()
    for name, plugin in kernel.pm.list_name_plugin():
        for module in getattr(plugin, "DEFERRED_IMPORTS", ()):
            assert module in sys.modules, (name, module)
