"""``ollamakit plugins``: every plugin with its hooks, every driver, and load errors shown."""

from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner

import ollamakit.drivers
import ollamakit.plugins
from ollamakit.cli import build_cli
from ollamakit.config import Settings
from ollamakit.kernel import Kernel
from ollamakit.plugins import make_plugin_manager


def with_extra_entry_points(monkeypatch, module, extra):
    """Make ``module.entry_points(group=...)`` also return ``extra`` entry points of that group."""
    real = module.entry_points

    def entry_points(group):
        return [*real(group=group), *(ep for ep in extra if ep.group == group)]

    monkeypatch.setattr(module, "entry_points", entry_points)


def run_plugins(pm):
    result = CliRunner().invoke(build_cli(pm), ["plugins"])
    assert result.exit_code == 0, result.output
    return result.output


def test_lists_plugins_with_their_hooks_and_drivers():
    output = run_plugins(make_plugin_manager())
    plugins, drivers = output.split("Drivers:\n")
    assert "  ollama_api: " in plugins and "register_routes" in plugins
    assert "  cli: register_commands" in plugins
    assert "  acme: register_commands" in plugins  # the example third-party plugin
    assert "  storage/fs: ollamakit_fsstore:FileSystemStorage" in drivers
    assert "  storage/acme: ollamakit_acme.storage:AcmeStorage" in drivers
    assert "  transport/http: " in drivers
    for line in output.splitlines():  # our own plugins and drivers load cleanly
        if line.startswith(("  cli:", "  acme:", "  ollama_api:", "  storage/")):
            assert "FAILED" not in line, line


def test_a_broken_plugin_is_reported_not_fatal(monkeypatch):
    broken = [
        EntryPoint("broken", "ollamakit_no_such_module.plugin", "ollamakit.plugins"),
        EntryPoint("exploding", "ollamakit.testing.contracts:NoSuchPlugin", "ollamakit.plugins"),
    ]
    with_extra_entry_points(monkeypatch, ollamakit.plugins, broken)
    pm = make_plugin_manager()
    errors = {e.name: e.error for e in pm.load_errors}
    assert errors["broken"].startswith("ModuleNotFoundError") and errors["exploding"].startswith(
        "AttributeError"
    )
    output = run_plugins(pm)
    assert (
        "  broken: FAILED to load ollamakit_no_such_module.plugin: ModuleNotFoundError: " in output
    )
    assert "No module named 'ollamakit_no_such_module'" in output
    assert (
        "  exploding: FAILED to load ollamakit.testing.contracts:NoSuchPlugin: AttributeError: "
        in output
    )
    # The healthy plugins still loaded and still work.
    assert "  cli: register_commands" in output
    result = CliRunner().invoke(build_cli(pm), ["--help"])
    assert result.exit_code == 0 and "create" in result.output


def test_a_plugin_whose_deferred_modules_fail_is_reported_and_dropped(monkeypatch, tmp_path):
    # It loads (its own module is fine) but names a route module that cannot be imported.
    (tmp_path / "ollamakit_lazy_broken.py").write_text(
        "from ollamakit.hookspecs import hookimpl\n"
        "DEFERRED_IMPORTS = ('ollamakit_no_such_routes',)\n"
        "@hookimpl\n"
        "def register_routes(app, kernel):\n"
        "    import ollamakit_no_such_routes\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = [EntryPoint("lazy_broken", "ollamakit_lazy_broken", "ollamakit.plugins")]
    with_extra_entry_points(monkeypatch, ollamakit.plugins, lazy)
    pm = make_plugin_manager()
    assert pm.get_plugin("lazy_broken") is not None and pm.load_errors == []
    output = run_plugins(pm)
    assert "  lazy_broken: FAILED to load ollamakit_lazy_broken: ModuleNotFoundError: " in output
    assert "No module named 'ollamakit_no_such_routes'" in output
    assert pm.get_plugin("lazy_broken") is None  # and so no server calls its hooks
    assert "  openai: register_routes" in output and "  cli: register_commands" in output


def test_a_kernel_drops_a_plugin_whose_deferred_modules_fail(monkeypatch, tmp_path):
    (tmp_path / "ollamakit_lazy_broken.py").write_text(
        "DEFERRED_IMPORTS = ('ollamakit_no_such_routes',)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = [EntryPoint("lazy_broken", "ollamakit_lazy_broken", "ollamakit.plugins")]
    with_extra_entry_points(monkeypatch, ollamakit.plugins, lazy)
    kernel = Kernel(Settings(models_dir=tmp_path / "models"), make_plugin_manager())
    assert kernel.pm.get_plugin("lazy_broken") is None
    assert [e.name for e in kernel.pm.load_errors] == ["lazy_broken"]


def test_a_broken_driver_is_reported_with_its_error(monkeypatch):
    broken = [EntryPoint("wobbly", "ollamakit_no_such_store:Store", "ollamakit.storage")]
    with_extra_entry_points(monkeypatch, ollamakit.drivers, broken)
    output = run_plugins(make_plugin_manager())
    assert (
        "  storage/wobbly: FAILED: ModuleNotFoundError: No module named 'ollamakit_no_such_store'"
        in output
    )
    assert "  storage/fs: ollamakit_fsstore:FileSystemStorage" in output


def test_plugins_can_be_skipped_by_name():
    pm = make_plugin_manager(skip=("cli",))
    assert pm.get_plugin("cli") is None and pm.get_plugin("ollama_api") is not None
    result = CliRunner().invoke(build_cli(pm), ["--help"])
    assert "create" not in result.output and "serve" in result.output


@pytest.mark.parametrize("name", ["fs", "FS", "acme", "Acme"])
def test_storage_drivers_are_found_by_name_case_insensitively(name):
    assert ollamakit.drivers.find_driver_name("storage", name) == name.lower()
