"""``ollamakit show NAME``: a model's summary, or one part of it with a flag."""

from __future__ import annotations

import click

from .client import Client
from .formatting import human_number, table

PARTS = ("license", "modelfile", "parameters", "system", "template")


def _number(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _head(text: str, lines: int = 2) -> list[list[str]]:
    """The first non-blank ``lines`` of ``text``, with ``...`` when there is more."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in kept[:lines]]
    return rows + ([["", "..."]] if len(kept) > lines else [])


def model_rows(info: dict) -> list[list[str]]:
    details = info.get("details") if isinstance(info.get("details"), dict) else {}
    model_info = info.get("model_info") if isinstance(info.get("model_info"), dict) else None
    rows = []
    if info.get("remote_host"):
        rows += [
            ["", "Remote model", str(info.get("remote_model", ""))],
            ["", "Remote URL", str(info["remote_host"])],
        ]
    if model_info is not None:
        arch = model_info.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""
        if arch:
            rows.append(["", "architecture", arch])
        parameters = details.get("parameter_size") or ""
        count = model_info.get("general.parameter_count")
        if not parameters and isinstance(count, (int, float)) and not isinstance(count, bool):
            parameters = human_number(int(count))
        if parameters:
            rows.append(["", "parameters", str(parameters)])
        for key, label in (
            ("context_length", "context length"),
            ("embedding_length", "embedding length"),
        ):
            value = _number(model_info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, value])
    else:
        rows += [
            ["", "architecture", str(details.get("family", ""))],
            ["", "parameters", str(details.get("parameter_size", ""))],
        ]
    rows.append(["", "quantization", str(details.get("quantization_level", ""))])
    if info.get("requires"):
        rows.append(["", "requires", str(info["requires"])])
    return rows


def _short(value, width: int = 10) -> str:
    """A metadata value for one table cell; a long list shows its first items and a count."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, list):
        return str(value)
    shown, used = [], 1
    for item in value:
        text = str(item)
        if shown and used + len(text) + 2 > width:
            break
        shown.append(text)
        used += len(text) + (2 if len(shown) > 1 else 0)
    more = f" ...+{len(value) - len(shown)} more" if len(shown) < len(value) else ""
    return "[" + " ".join(shown) + more + "]"


def summary(info: dict, verbose: bool = False) -> str:
    """The default view, section by section, as ``ollama show`` lays it out; ``verbose`` adds
    every metadata key and the tensors."""
    sections = [("Model", model_rows(info))]
    capabilities = info.get("capabilities")
    if isinstance(capabilities, list) and capabilities:
        sections.append(("Capabilities", [["", str(c)] for c in capabilities]))
    parameters = info.get("parameters")
    if isinstance(parameters, str) and parameters.strip():
        rows = []
        for line in parameters.splitlines():
            if line.strip():
                key, _, value = line.strip().partition(" ")
                rows.append(["", key, value.strip()])
        sections.append(("Parameters", rows))
    model_info, tensors = info.get("model_info"), info.get("tensors")
    if verbose and isinstance(model_info, dict) and model_info:
        sections.append(
            ("Metadata", [["", key, _short(model_info[key])] for key in sorted(model_info)])
        )
    if verbose and isinstance(tensors, list) and tensors:
        rows = [
            ["", str(t.get("name", "")), str(t.get("type", "")), _short(t.get("shape", []), 40)]
            for t in tensors
            if isinstance(t, dict)
        ]
        sections.append(("Tensors", rows))
    for key, title in (("system", "System"), ("license", "License")):
        text = info.get(key)
        if isinstance(text, str) and text.strip():
            sections.append((title, _head(text)))
    return "".join(f"  {title}\n{table(rows)}\n\n" for title, rows in sections)


@click.command("show")
@click.argument("name")
@click.option("--license", "license_", is_flag=True, help="Show the license.")
@click.option("--modelfile", is_flag=True, help="Show the Modelfile.")
@click.option("--parameters", is_flag=True, help="Show the parameters.")
@click.option("--system", is_flag=True, help="Show the system message.")
@click.option("--template", is_flag=True, help="Show the template.")
@click.option("-v", "--verbose", is_flag=True, help="Also show every metadata key and the tensors.")
def show_command(name, license_, modelfile, parameters, system, template, verbose):
    """Show information for a model."""
    chosen = [
        part
        for part, flag in zip(PARTS, (license_, modelfile, parameters, system, template))
        if flag
    ]
    if len(chosen) > 1:
        raise click.UsageError(
            "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified"
        )
    with Client() as client:
        info = client.show(name, verbose)
    if not chosen:
        click.echo(summary(info, verbose), nl=False)
        return
    text = info.get(chosen[0])
    text = text if isinstance(text, str) else ""
    # Like ``ollama``: the system and template texts are printed exactly, with no newline added.
    click.echo(text, nl=chosen[0] not in ("system", "template"))


commands = (show_command,)
