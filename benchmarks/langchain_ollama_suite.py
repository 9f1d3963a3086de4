"""langchain-ollama's own integration tests, from its source distribution, against a real
``ollamakit serve`` with SmolLM2-135M under the model names the tests ask for.

The tests were written for Ollama serving llama3.1, gpt-oss:20b and deepseek-r1:1.5b. Here one
model, SmolLM2-135M-Instruct (from the package registry, as the test suite fetches it), is created
through the API with a ChatML template that offers tools (``ollamakit.testing.smollm2``) under
llama3.1's name; the reasoning models' names get the same template with thinking (``<think>``
tags), so they have the ``thinking`` capability the tests ask of them. So every failure left is
either the 135M model's limits (it cannot reason, and rarely calls a tool on its own) or a
difference in the server; the script prints the pass count and every failure with its message,
for that sorting.

The sdist, its extracted tests and a virtual environment with langchain-ollama and its test
dependencies (pinned below) are cached in ``~/.cache/ollamakit/langchain-ollama``. The server runs
from the environment that runs this script:

    .venv-test/bin/python benchmarks/langchain_ollama_suite.py [--version 1.1.0] [-k EXPR] [--json out.json]

The names are given ``num_predict`` 128, far above what any of the tests' answers needs: an answer
that never ends (a 135M model sometimes repeats itself) stops there instead of filling the
context, and a test it would have failed still fails. ``OLLAMA_MAX_LOADED_MODELS=1`` keeps one name loaded at a
time, as Ollama, which loads one runner per model file, would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ollamakit.testing.fixtures import ServerProcess
from ollamakit.testing.models import CACHE
from ollamakit.testing.smollm2 import create_smollm2, create_thinking_names

VERSION = "1.1.0"
# The test dependency group of langchain-ollama 1.1.0's pyproject.toml, at the versions its
# uv.lock resolves (langchain-core and langchain-tests are path sources there: their releases).
TEST_REQUIREMENTS = [
    "langchain-core==1.2.26",
    "langchain-tests==1.1.5",
    "pytest==8.4.2",
    "pytest-asyncio==0.26.0",
    "pytest-socket==0.7.0",
    "syrupy==4.9.1",
    "pytest-timeout==2.4.0",
]
CHAT_NAME = "llama3.1"  # the tests' defaults
REASONING_NAMES = ["gpt-oss:20b", "deepseek-r1:1.5b"]
PARAMETERS = {"num_predict": 128}


def run(command: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def sources(version: str, cache: Path) -> Path:
    """The extracted sdist (downloaded once)."""
    tree = cache / f"langchain_ollama-{version}"
    if (tree / "tests" / "integration_tests").is_dir():
        return tree
    sdists = cache / "sdist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            sdists,
            f"langchain-ollama=={version}",
        ]
    )
    with tarfile.open(sdists / f"langchain_ollama-{version}.tar.gz") as archive:
        archive.extractall(cache, filter="data")
    return tree


def environment(version: str, cache: Path, tree: Path) -> Path:
    """A virtual environment with the sdist and its test dependencies; made again only when
    the list changes."""
    venv = cache / f"venv-{version}"
    wanted = "\n".join([str(tree), *TEST_REQUIREMENTS])
    stamp = venv / "installed.txt"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin" / "python"
    run([sys.executable, "-m", "venv", "--clear", venv])
    run(
        [
            venv / "bin" / "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            tree,
            *TEST_REQUIREMENTS,
        ]
    )
    stamp.write_text(wanted)
    return venv / "bin" / "python"


def outcomes(junit: Path) -> list[dict]:
    """Each test case of pytest's JUnit XML: its id, outcome and, for a failure, the message."""
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = (
                    ("failed" if child.tag == "failure" else "error"),
                    child.get("message", ""),
                )
                message += "\n" + (child.text or "")[-3000:]
            elif child.tag == "skipped":
                kind = child.get("type", "")
                outcome = "xfailed" if kind == "pytest.xfail" else "skipped"
                message = child.get("message", "")
        cases.append(
            {
                "test": test,
                "outcome": outcome,
                "seconds": float(case.get("time", 0)),
                "message": message,
            }
        )
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version", default=VERSION, help="langchain-ollama release (default %(default)s)"
    )
    parser.add_argument("--cache", type=Path, default=CACHE / "langchain-ollama")
    parser.add_argument("-k", dest="keyword", help="only the tests pytest -k selects")
    parser.add_argument(
        "--timeout", type=int, default=300, help="seconds per test (default %(default)s)"
    )
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    tree = sources(args.version, args.cache)
    python = environment(args.version, args.cache, tree)

    with tempfile.TemporaryDirectory(prefix="langchain-ollama-") as scratch:
        models_dir = Path(scratch) / "models"
        models_dir.mkdir()
        server = ServerProcess(models_dir, env={"OLLAMA_MAX_LOADED_MODELS": "1"}).start()
        try:
            create_smollm2(server.url, [CHAT_NAME], parameters=PARAMETERS)
            create_thinking_names(server.url, CHAT_NAME, REASONING_NAMES)
            junit = Path(scratch) / "junit.xml"
            command = [
                python,
                "-m",
                "pytest",
                "tests/integration_tests",
                "-p",
                "no:cacheprovider",
                "-v",
                "--timeout",
                str(args.timeout),
                "--junitxml",
                junit,
                "-o",
                "junit_family=xunit1",
            ]
            if args.keyword:
                command += ["-k", args.keyword]
            env = {**os.environ, "OLLAMA_HOST": server.url}
            env.pop("OLLAMA_TEST_MODEL", None)
            env.pop("OLLAMA_REASONING_TEST_MODEL", None)
            began = time.monotonic()
            subprocess.run(command, cwd=tree, env=env)
            minutes = (time.monotonic() - began) / 60
            if not junit.exists():
                print("pytest was stopped before it wrote its results")
                return 1
            cases = outcomes(junit)
        finally:
            server.stop()
            log = Path(server.log.name)
            print(f"server log: {log.stat().st_size} bytes; its last lines:")
            print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-5:]))

    counts = {}
    for case in cases:
        counts[case["outcome"]] = counts.get(case["outcome"], 0) + 1
    print(
        f"\nlangchain-ollama {args.version} integration tests against ollamakit with SmolLM2-135M "
        f"({minutes:.1f} min, load average {os.getloadavg()[0]:.1f}):"
    )
    print(
        "  "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        + f" of {len(cases)}"
    )
    for case in cases:
        if case["outcome"] in ("failed", "error"):
            first = case["message"].strip().splitlines()[0][:300] if case["message"].strip() else ""
            print(f"  {case['outcome'].upper()} {case['test']} ({case['seconds']:.0f} s): {first}")
    if args.json:
        args.json.write_text(
            json.dumps({"version": args.version, "counts": counts, "cases": cases}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
