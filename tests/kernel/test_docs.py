"""The documentation keeps up with the code: a hook, driver group, setting or link that the docs
do not cover fails here."""

import inspect
import re
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pluggy
import pytest

from ollamakit import drivers, hookspecs
from ollamakit.cli import build_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def hook_names() -> set[str]:
    return {
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "ollamakit_spec")
    }


def sections(path: Path) -> set[str]:
    return set(re.findall(r"^## (\w+)\s*$", path.read_text(), re.M))


def test_there_are_hooks_to_document():
    assert {"register_routes", "register_commands", "make_storage", "on_startup"} <= hook_names()


@pytest.mark.parametrize("hook", sorted(hook_names()))
def test_every_hook_has_a_section(hook):
    assert hook in sections(DOCS / "plugin-hooks.md"), (
        f"docs/plugin-hooks.md needs a '## {hook}' section"
    )


def test_every_hook_section_names_a_real_hook():
    documented = {name for name in sections(DOCS / "plugin-hooks.md") if name.islower()}
    assert documented - hook_names() == set(), (
        "docs/plugin-hooks.md documents hooks that do not exist"
    )


def test_hook_sections_state_their_signature_and_result_policy():
    text = (DOCS / "plugin-hooks.md").read_text()
    for hook in hook_names():
        body = text.split(f"\n## {hook}\n", 1)[1].split("\n## ", 1)[0]
        parameters = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert f"`{hook}({parameters})`" in body, (
            f"the {hook} section should start with its signature"
        )
        firstresult = getattr(hookspecs, hook).ollamakit_spec.get("firstresult", False)
        assert ("First result wins" in body) == firstresult, (
            f"the {hook} section misstates its result policy"
        )


@cache
def first_party_implementers() -> dict[str, set[str]]:
    """Hook name -> the packages whose ``ollamakit.plugins`` entry points (in this project's
    pyproject.toml, so not the example plugin's) implement it."""
    pm = pluggy.PluginManager("ollamakit")
    pm.add_hookspecs(hookspecs)
    for ep in entry_points(group="ollamakit.plugins"):
        if ep.dist is not None and ep.dist.name == "ollamakit":
            pm.register(ep.load(), name=ep.name)
    return {
        hook: {
            impl.plugin.__name__.split(".")[0] for impl in getattr(pm.hook, hook).get_hookimpls()
        }
        for hook in hook_names()
    }


def documented_users(hook: str) -> set[str]:
    """The packages named in the hook section's "First-party users:" paragraph."""
    body = (DOCS / "plugin-hooks.md").read_text().split(f"\n## {hook}\n", 1)[1].split("\n## ", 1)[0]
    paragraph = re.search(r"^First-party users?: (.*?)(?:\n\n|\Z)", body, re.M | re.S)
    return set(re.findall(r"`(ollamakit_\w+)", paragraph.group(1))) if paragraph else set()


def test_first_party_plugins_implement_hooks():
    implementers = first_party_implementers()
    assert {"ollamakit_ollama_api", "ollamakit_engine"} <= implementers[
        "register_routes"
    ] | implementers["load_model"]


@pytest.mark.parametrize("hook", sorted(hook_names()))
def test_the_first_party_users_of_each_hook_are_the_plugins_that_implement_it(hook):
    actual = first_party_implementers()[hook]
    assert documented_users(hook) == actual, (
        f"the {hook} section of docs/plugin-hooks.md should say 'First-party users:' and name "
        f"{sorted(actual) or 'none (no such paragraph)'}"
    )


def test_python_examples_in_the_docs_compile():
    for path in DOCS.glob("*.md"):
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            compile(block, f"{path.name} example {number}", "exec")


def test_every_driver_group_is_documented():
    text = (DOCS / "drivers.md").read_text()
    for kind, group in drivers.GROUPS.items():
        assert f"`{group}`" in text, f"docs/drivers.md does not mention {group}"


def test_every_environment_variable_the_code_reads_is_documented():
    text = (DOCS / "configuration.md").read_text()
    names = set()
    for folder in ("ollamakit", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'](OLLAMA(?:KIT)?_[A-Z_]+)[\"']", path.read_text()))
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_serve_flag_is_documented():
    text = (DOCS / "configuration.md").read_text()
    serve = build_cli().commands["serve"]
    for option in serve.params:
        for flag in option.opts:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}`" in text, f"docs/configuration.md does not document serve {flag}"


def test_relative_links_resolve():
    for path in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_readme_has_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    serve = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/ollamakit build-ggml && .venv/bin/ollamakit serve"
    assert serve in text
    assert "bash scripts/test.sh" in text
