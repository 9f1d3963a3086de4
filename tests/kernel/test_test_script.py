"""``scripts/test.sh`` run for real, in a copy of the repository layout, with the programs it calls
(apt-get, python3 and the tools of the environment it makes) replaced by stubs that log their
arguments: its exit status, what it shows and what it installs where."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# python3 -m venv DIR makes DIR/bin/pip, DIR/bin/python and the tools the script runs; the fake
# python exits with PYTEST_RC, and the tool named by FAILING exits with 1.
PYTHON3 = """#!/bin/sh
echo "python3 $*" >> "$LOG"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\necho "%s/bin/python $*" >> "$LOG"\\nexit "$PYTEST_RC"\\n' "$3" > "$3/bin/python"
    for tool in pip ollamakit lint-imports ruff mypy; do
        printf '#!/bin/sh\\necho "%s/bin/%s $*" >> "$LOG"\\n[ "$FAILING" != %s ]\\n' "$3" $tool $tool > "$3/bin/$tool"
        chmod +x "$3/bin/$tool"
    done
    chmod +x "$3/bin/python"
fi
"""
# apt-get says something on stdout, and fails to install when APT_FAILS is set.
APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
echo "apt-get says: $1"
if [ "$1" = install ] && [ -n "$APT_FAILS" ]; then echo "E: Unable to locate package docker-registry" >&2; exit 100; fi
"""
ID = "#!/bin/sh\necho 0\n"  # root, so the script tries to install the registry


def stub(folder: Path, name: str, text: str):
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_script(
    tmp_path,
    *args,
    pytest_rc=0,
    apt_fails=False,
    programs=("node", "npm"),
    isolated=False,
    failing="",
):
    """``programs`` are stubbed as installed; ``isolated`` leaves every other program off PATH."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "test.sh", repo / "scripts" / "test.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "python3", PYTHON3)
    stub(bin_dir, "apt-get", APT_GET)
    stub(bin_dir, "id", ID)
    log = tmp_path / "log"
    for name in programs:  # present on this "machine": apt-get does not install them
        stub(bin_dir, name, "#!/bin/sh\n")
    if isolated:  # the stubs and the few real programs the script and the stubs call, nothing else
        for name in ("dirname", "mkdir", "chmod"):
            (bin_dir / name).symlink_to(shutil.which(name))
    env = {
        "PATH": str(bin_dir) if isolated else f"{bin_dir}:/usr/bin:/bin",
        "LOG": str(log),
        "PYTEST_RC": str(pytest_rc),
        "APT_FAILS": "1" if apt_fails else "",
        "FAILING": failing,
    }
    done = subprocess.run(
        [shutil.which("bash"), str(repo / "scripts" / "test.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("pytest_rc", [0, 1, 2, 5])
def test_the_script_exits_with_pytests_status(tmp_path, pytest_rc):
    done, log = run_script(tmp_path, "-x", "tests/cli", pytest_rc=pytest_rc)
    assert done.returncode == pytest_rc, done.stderr  # 5, no test run, is a failure too
    assert log[-1] == ".venv-test/bin/python -m pytest -x tests/cli"


def test_the_tests_get_their_own_environment(tmp_path):
    done, log = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    # The example plugin goes into .venv-test only: the server's .venv is never made or touched.
    assert "python3 -m venv .venv-test" in log
    installs = [line for line in log if "/bin/pip " in line]
    assert len(installs) == 1 and installs[0].startswith(".venv-test/bin/pip install")
    assert "-e examples/ollamakit-acme" in installs[0]
    # ggml is built for this CPU before the tests run, and a failed build stops the script
    assert log.index(".venv-test/bin/ollamakit build-ggml --strict") < len(log) - 1
    assert not (tmp_path / "repo" / ".venv").exists()


HOUSE_RULES = [
    ".venv-test/bin/lint-imports",
    ".venv-test/bin/ruff check --no-cache .",
    ".venv-test/bin/ruff format --check --no-cache .",
    ".venv-test/bin/mypy",
]


def test_the_house_rules_run_before_the_tests(tmp_path):
    done, log = run_script(tmp_path, "tests/kernel")
    assert done.returncode == 0, done.stderr
    assert [line.strip() for line in log[-5:]] == [
        *HOUSE_RULES,
        ".venv-test/bin/python -m pytest tests/kernel",
    ]


@pytest.mark.parametrize("tool", ["lint-imports", "ruff", "mypy"])
def test_a_broken_house_rule_stops_the_script(tmp_path, tool):
    done, log = run_script(tmp_path, failing=tool)
    assert done.returncode == 1
    assert not any("pytest" in line for line in log)


needs_apt_branch = pytest.mark.skipif(
    os.path.exists("/usr/bin/docker-registry"),
    reason="docker-registry is installed, so the script does not call apt-get",
)


@needs_apt_branch
def test_apt_get_output_is_shown(tmp_path):
    done, log = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "apt-get says: update" in done.stdout and "apt-get says: install" in done.stdout
    assert "apt-get install -y -q docker-registry" in log


@needs_apt_branch
def test_a_failed_install_says_why_and_stops_the_script(tmp_path):
    done, log = run_script(tmp_path, apt_fails=True)
    assert done.returncode == 100
    assert "Unable to locate package docker-registry" in done.stderr
    assert not any("pytest" in line for line in log)


def test_node_and_npm_are_installed_when_missing(tmp_path):
    done, log = run_script(tmp_path, programs=(), isolated=True)
    assert done.returncode == 0, done.stderr
    [install] = [line for line in log if line.startswith("apt-get install")]
    assert install.endswith(" nodejs npm") and "apt-get says: install" in done.stdout
    assert (
        log.index("apt-get update -q")
        < log.index(install)
        < log.index(".venv-test/bin/ollamakit build-ggml --strict")
    )


def test_nothing_is_installed_when_nothing_is_missing(tmp_path):
    if not os.path.exists("/usr/bin/docker-registry"):
        pytest.skip("docker-registry is not installed here, so the script installs it")
    done, log = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not any(line.startswith("apt-get") for line in log)
