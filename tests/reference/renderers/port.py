"""Carries Ollama's renderer and parser test tables over as JSON (the files beside this one).

    python tests/reference/renderers/port.py /path/to/ollama.git [commit]

The tables are read out of Ollama's Go test files by ``golit`` (no retyping), and Go's field
names become the API's JSON keys (``Role`` → ``role``, ``ToolCalls`` → ``tool_calls`` ...).
Each output file says which file, function and commit every table came from. The expected
strings are Ollama's: they are what a renderer or parser must produce.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from golit import constants, table

HERE = Path(__file__).resolve().parent

KEYS = {
    "Role": "role",
    "Content": "content",
    "Thinking": "thinking",
    "ToolCalls": "tool_calls",
    "ToolName": "tool_name",
    "ToolCallID": "tool_call_id",
    "Images": "images",
    "Function": "function",
    "Name": "name",
    "Arguments": "arguments",
    "Index": "index",
    "ID": "id",
    "Description": "description",
    "Parameters": "parameters",
    "Properties": "properties",
    "Type": "type",
    "Required": "required",
    "Enum": "enum",
    "Items": "items",
    "AnyOf": "anyOf",
    "Defs": "$defs",
    "Channel": "channel",
    "Recipient": "recipient",
    "Header": "header",
    "Value": "value",
}

# output file -> [(section, Go file, test function, table variable[, the test's setup])]
TABLES = {
    "harmony.json": [
        ("header_parsing", "harmony/harmonyparser_test.go", "TestHeaderParsing", "tests"),
        ("header_event", "harmony/harmonyparser_test.go", "TestHarmonyParserHeaderEvent", "tests"),
        (
            "non_streaming",
            "harmony/harmonyparser_test.go",
            "TestHarmonyParserNonStreaming",
            "tests",
        ),
        ("streaming", "harmony/harmonyparser_test.go", "TestHarmonyParserStreaming", "cases"),
        (
            "valid_chars",
            "harmony/harmonyparser_test.go",
            "TestFunctionConvertToValidChars",
            "tests",
        ),
        ("convert_and_add", "harmony/harmonyparser_test.go", "TestFunctionConvertAndAdd", "tests"),
    ],
    "cogito.json": [
        ("render", "model/renderers/cogito_test.go", "TestCogitoRenderer", "tests"),
        ("parse", "model/parsers/cogito_test.go", "TestCogitoParser", "tests"),
        (
            "streaming",
            "model/parsers/cogito_test.go",
            "TestCogitoParser_StreamingEdgeCases",
            "tests",
        ),
        (
            "tool_call",
            "model/parsers/cogito_test.go",
            "TestCogitoParser_parseToolCallContent",
            "tests",
        ),
    ],
    "deepseek3.json": [
        ("render", "model/renderers/deepseek3_test.go", "TestDeepSeekRenderer", "tests"),
        ("parse", "model/parsers/deepseek3_test.go", "TestDeepSeekParser", "tests"),
        ("streaming", "model/parsers/deepseek3_test.go", "TestDeepSeekParser_Streaming", "tests"),
        (
            "tool_call",
            "model/parsers/deepseek3_test.go",
            "TestDeepSeek3Parser_parseToolCallContent",
            "tests",
        ),
        ("edge_cases", "model/parsers/deepseek3_test.go", "TestDeepSeekParser_EdgeCases", "tests"),
    ],
    "filter-think-tags.json": [
        ("filter_think_tags", "server/routes_test.go", "TestFilterThinkTags", "testCases"),
    ],
    "functiongemma.json": [
        ("render", "model/renderers/functiongemma_test.go", "TestFunctionGemmaRenderer", "tests"),
        ("parse", "model/parsers/functiongemma_test.go", "TestFunctionGemmaParser", "tests"),
    ],
    "glm-4.7.json": [
        ("render", "model/renderers/glm47_test.go", "TestGLM47Renderer", "tests"),
        ("glm46_events", "model/parsers/glm46_test.go", "TestGLM46ParserStreaming", "cases"),
        (
            "glm46_final_call",
            "model/parsers/glm46_test.go",
            "TestGLM46ParserFinalizesCompleteToolCallOnDone",
            "tests",
        ),
        (
            "glm46_incomplete_call",
            "model/parsers/glm46_test.go",
            "TestGLM46ParserRejectsIncompleteToolCallOnDone",
            "tests",
        ),
        (
            "glm46_xml_order",
            "model/parsers/glm46_test.go",
            "TestGLMToolCallXMLOrderPreservation",
            "testCases",
        ),
        ("glm46_tool_call", "model/parsers/glm46_test.go", "TestGLM46ToolCallParsing", "cases"),
        ("glm46_repair", "model/parsers/glm46_test.go", "TestRepairGLM46XML", "cases"),
        ("glm_ocr_render", "model/renderers/glmocr_test.go", "TestGlmOcrRenderer_Images", "tests"),
    ],
    "lfm2.json": [
        ("render", "model/renderers/lfm2_test.go", "TestLFM2Renderer_ChatTemplateParity", "tests"),
        ("parse", "model/parsers/lfm2_test.go", "TestLFM2Parser", "tests"),
        ("streaming", "model/parsers/lfm2_test.go", "TestLFM2Parser_Streaming", "tests"),
        ("call", "model/parsers/lfm2_test.go", "TestLFM2Parser_parseToolCallContent", "tests"),
        ("calls", "model/parsers/lfm2_test.go", "TestLFM2Parser_parseToolCallsContent", "tests"),
        ("edge_cases", "model/parsers/lfm2_test.go", "TestLFM2Parser_EdgeCases", "tests"),
        (
            "image_placeholders",
            "model/parsers/lfm2_test.go",
            "TestLFM2Parser_ImagePlaceholdersPreserved",
            "tests",
        ),
    ],
    "ministral.json": [
        ("events", "model/parsers/ministral_test.go", "TestMinistralParserStreaming", "cases"),
        ("json_end", "model/parsers/ministral_test.go", "TestFindJSONEnd", "tests"),
    ],
    "nemotron.json": [
        (
            "render",
            "model/renderers/nemotron3nano_reference_test.go",
            "nemotronReferenceCases",
            "return",
        ),
        (
            "render_images",
            "model/renderers/nemotron3nano_test.go",
            "TestNemotron3NanoRenderer_Images",
            "tests",
        ),
        (
            "render_v35_expected",
            "model/renderers/nemotron35_reference_test.go",
            "",
            "nemotron35Expected",
        ),
        ("parse", "model/parsers/nemotron3nano_test.go", "TestNemotron3NanoParser", "tests"),
        (
            "streaming",
            "model/parsers/nemotron3nano_test.go",
            "TestNemotron3NanoParser_Streaming",
            "tests",
        ),
    ],
    "olmo3.json": [
        ("render", "model/renderers/olmo3_test.go", "TestOlmo3Renderer", "tests"),
        ("render_think", "model/renderers/olmo3_think_test.go", "TestOlmo3ThinkRenderer", "tests"),
        ("parse", "model/parsers/olmo3_test.go", "TestOlmo3Parser", "tests"),
        ("streaming", "model/parsers/olmo3_test.go", "TestOlmo3Parser_Streaming", "tests"),
        ("calls", "model/parsers/olmo3_test.go", "TestParseOlmo3FunctionCalls", "tests"),
        ("value", "model/parsers/olmo3_test.go", "TestParseOlmo3Value", "tests"),
        ("think_parse", "model/parsers/olmo3_think_test.go", "TestOlmo3ThinkParser", "tests"),
        (
            "think_streaming_edge_cases",
            "model/parsers/olmo3_think_test.go",
            "TestOlmo3ThinkParser_StreamingEdgeCases",
            "tests",
        ),
        (
            "think_boundary",
            "model/parsers/olmo3_think_test.go",
            "TestOlmo3ThinkParser_ThinkBoundary",
            "tests",
        ),
    ],
    "qwen3-vl.json": [
        (
            "render_instruct",
            "model/renderers/qwen3vl_nonthinking_test.go",
            "TestQwen3VLNonThinkingRenderer",
            "tests",
        ),
        (
            "render_thinking",
            "model/renderers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingRenderer",
            "tests",
        ),
        (
            "instruct_events",
            "model/parsers/qwen3vl_nonthinking_test.go",
            "TestQwen3VLNonThinkingParserStreaming",
            "cases",
            {"thinking": False},
        ),
        (
            "old_events",
            "model/parsers/qwen3vl_nonthinking_test.go",
            "TestQwenOldParserStreaming",
            "cases",
            {"thinking": False},
        ),
        (
            "instruct_call_space",
            "model/parsers/qwen3vl_nonthinking_test.go",
            "TestQwen3VLNonThinkingToolCallWhitespaceHandling",
            "cases",
            {"thinking": False},
        ),
        (
            "tool_call",
            "model/parsers/qwen3vl_nonthinking_test.go",
            "TestQwen3VLNonThinkingToolParser",
            "steps",
        ),
        (
            "thinking_tool_call",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingToolParser",
            "steps",
        ),
        (
            "thinking_events",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingParserStreaming",
            "cases",
            {"thinking": True},
        ),
        ("state", "model/parsers/qwen3vl_thinking_test.go", "TestQwen3VLParserState", "cases"),
        (
            "thinking_prefill_events",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingParserWithThinkingPrefill",
            "cases",
            {"thinking": True, "last": {"role": "assistant", "thinking": "i am thinking"}},
        ),
        (
            "content_prefill_events",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingParserWithNonThinkingPrefill",
            "cases",
            {
                "thinking": True,
                "last": {
                    "role": "assistant",
                    "thinking": "i am thinking",
                    "content": "i am content",
                },
            },
        ),
        (
            "thinking_space_events",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLThinkingWhitespaceHandling",
            "cases",
            {"thinking": True},
        ),
        (
            "thinking_call_space",
            "model/parsers/qwen3vl_thinking_test.go",
            "TestQwen3VLToolCallWhitespaceHandling",
            "cases",
            {"thinking": True, "last": "each case's prefillMsg"},
        ),
    ],
    "qwen3.5.json": [
        (
            "qwen38_render",
            "model/renderers/qwen38_test.go",
            "TestQwen38RendererMatchesReferenceFlows",
            "tests",
        ),
        (
            "qwen38_effort",
            "model/renderers/qwen38_test.go",
            "TestQwen38RendererReasoningEffortMapping",
            "tests",
        ),
        (
            "qwen38_invalid",
            "model/renderers/qwen38_test.go",
            "TestQwen38RendererRejectsInvalidTranscripts",
            "tests",
        ),
        (
            "qwen38_parse",
            "model/parsers/qwen38_test.go",
            "TestQwen38ParserMalformedAndControlLikeContent",
            "tests",
        ),
    ],
    "gemma4.json": [
        (
            "render",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererMatchesReference",
            "tests",
        ),
        (
            "render_variants",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererVariantsMatchExpectedGenerationPrompt",
            "tests",
        ),
        (
            "render_variants_messages",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererVariantsMatchExpectedGenerationPrompt",
            "messages",
        ),
        (
            "render_tool_continuations",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererCanonicalToolContinuations",
            "tests",
        ),
        (
            "render_tool_continuations_messages",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererCanonicalToolContinuations",
            "messages",
        ),
        (
            "render_known_differences",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererKnownJinja2Differences",
            "tests",
        ),
        (
            "render_parity",
            "model/renderers/gemma4_reference_test.go",
            "TestGemma4RendererMatchesJinja2ExpandedParity",
            "tests",
        ),
        ("parse", "model/parsers/gemma4_test.go", "TestGemma4Parser", "tests"),
        (
            "extra_call_close",
            "model/parsers/gemma4_test.go",
            "TestGemma4Parser_IgnoresExtraToolCallCloseTags",
            "tests",
        ),
        (
            "response_after_call",
            "model/parsers/gemma4_test.go",
            "TestGemma4Parser_IgnoresToolResponseBoundaryAfterToolCall",
            "tests",
        ),
        (
            "split_thinking_tag",
            "model/parsers/gemma4_test.go",
            "TestGemma4Parser_StreamingSplitThinkingTag",
            "tests",
        ),
        ("args_to_json", "model/parsers/gemma4_test.go", "TestGemma4ArgsToJSON", "tests"),
        (
            "repair_delimiter",
            "model/parsers/gemma4_test.go",
            "TestRepairGemma4MissingStringDelimiter",
            "tests",
        ),
        (
            "repair_object_close",
            "model/parsers/gemma4_test.go",
            "TestRepairGemma4MissingObjectClose",
            "tests",
        ),
        (
            "repair_single_quotes",
            "model/parsers/gemma4_test.go",
            "TestRepairGemma4SingleQuotedValues",
            "tests",
        ),
        (
            "repair_raw_string",
            "model/parsers/gemma4_test.go",
            "TestRepairGemma4RawTerminalStringValue",
            "tests",
        ),
        (
            "repair_candidates",
            "model/parsers/gemma4_test.go",
            "TestGemma4RepairCandidates",
            "tests",
        ),
        (
            "repair_calls",
            "model/parsers/gemma4_test.go",
            "TestParseGemma4ToolCall_RepairsIssue15315Examples",
            "tests",
        ),
        (
            "repair_properties",
            "model/parsers/gemma4_test.go",
            "TestParseGemma4ToolCall_RepairsMultipleProperties",
            "tests",
        ),
    ],
    "laguna.json": [
        (
            "render",
            "model/renderers/laguna_test.go",
            "TestLagunaRendererReferenceFlowCoverage",
            "tests",
        ),
        (
            "render_v8",
            "model/renderers/laguna_test.go",
            "TestLagunaV8RendererReferenceFlowCoverage",
            "tests",
        ),
        (
            "render_parity",
            "model/renderers/laguna_test.go",
            "TestLagunaRendererMatchesJinja2ExpandedParity",
            "tests",
        ),
        (
            "partial_think_open",
            "model/parsers/laguna_test.go",
            "TestLagunaParserPartialThinkOpenFakeoutInContent",
            "tests",
        ),
        (
            "partial_think_close",
            "model/parsers/laguna_test.go",
            "TestLagunaParserPartialThinkCloseFakeoutAtContentStart",
            "tests",
        ),
    ],
    "glimmer.json": [
        (
            "render",
            "model/renderers/glimmer_reference_test.go",
            "TestGlimmerRendererMatchesJinja2Reference",
            "tests",
            {"currentDate": "2026-07-29"},
        ),
        (
            "render_continuation",
            "model/renderers/glimmer_reference_test.go",
            "TestGlimmerRendererKnownJinja2DifferenceThinkingContinuation",
            "expected",
            {"currentDate": "2026-07-29"},
        ),
        (
            "render_continuation_messages",
            "model/renderers/glimmer_reference_test.go",
            "TestGlimmerRendererKnownJinja2DifferenceThinkingContinuation",
            "messages",
        ),
        (
            "render_parity",
            "model/renderers/glimmer_reference_test.go",
            "TestGlimmerRendererMatchesJinja2ExpandedParity",
            "tests",
        ),
        ("render_images", "model/renderers/glimmer_test.go", "TestGlimmerRenderImages", "tests"),
        (
            "render_strength",
            "model/renderers/glimmer_test.go",
            "TestGlimmerRenderReasoningStrength",
            "tests",
        ),
        (
            "literal_start",
            "model/parsers/glimmer_test.go",
            "TestGlimmerParserLiteralStartTokenInMessages",
            "tests",
        ),
    ],
    "qwen3-coder.json": [
        ("render", "model/renderers/qwen3coder_test.go", "TestQwen3CoderRenderer", "tests"),
        (
            "argument_text",
            "model/renderers/qwen3coder_test.go",
            "TestFormatToolCallArgument",
            "tests",
        ),
        (
            "definition_type",
            "model/renderers/qwen3coder_test.go",
            "TestQwen3ToolDefinitionTypes",
            "tests",
        ),
        ("parser_events", "model/parsers/qwen3coder_test.go", "TestQwenParserStreaming", "cases"),
        ("tool_call", "model/parsers/qwen3coder_test.go", "TestQwenToolParser", "steps"),
        ("value", "model/parsers/qwen3coder_test.go", "TestQwenToolCallValueParsing", "cases"),
        ("xml_transform", "model/parsers/qwen3coder_test.go", "TestQwenXMLTransform", "cases"),
        (
            "trailing_space",
            "model/parsers/qwen3coder_test.go",
            "TestTrailingWhitespaceLen",
            "cases",
        ),
        ("overlap", "model/parsers/qwen3coder_test.go", "TestOverlapFunction", "cases"),
    ],
}


GLIMMER_PROMPT = {
    # glimmerRefPrompt(parts...): BOS, the messages, then the assistant's turn opened
    "glimmerRefPrompt": lambda *parts: "<|begin_of_text|>" + "".join(parts) + "<|start|>assistant",
    # glimmerRefMsg(header, content, end): one message
    "glimmerRefMsg": lambda header, content, end: f"<|start|>{header}<|message|>{content}{end}",
}


def api_keys(value):
    """Go's field names as the API's JSON keys, and the tests' helper calls as what they build."""
    if isinstance(value, dict):
        if (
            value.get("$call") == "tool"
        ):  # tool(name, props): a function tool with object parameters
            name, props = value["args"]
            return {
                "type": "function",
                "function": {
                    "name": name,
                    "parameters": {"type": "object", "properties": api_keys(props)},
                },
            }
        if value.get("$call") in GLIMMER_PROMPT:  # the test's prompt builders, applied
            return GLIMMER_PROMPT[value["$call"]](*api_keys(value["args"]))
        if value.get("$call") == "gemma4TestStringTool":  # (name, argument...): string arguments
            name, *arguments = value["args"]
            return api_keys(
                {"$call": "tool", "args": [name, {a: {"type": ["string"]} for a in arguments}]}
            )
        if value.get("$call") in ("api.NewToolCallFunctionArguments", "api.NewToolPropertiesMap"):
            return {}
        out = {KEYS.get(k, k): api_keys(v) for k, v in value.items()}
        for key in ("arguments", "properties"):
            if isinstance(out.get(key), str):  # args(`{...}`), propsMap(`{...}`): JSON in order
                out[key] = json.loads(out[key])
            elif isinstance(out.get(key), list):  # testArgsOrdered / testPropsOrdered pairs
                out[key] = dict(
                    (p["Key"], p["value"]) if isinstance(p, dict) else p for p in out[key]
                )
        return out
    if isinstance(value, list):
        return [api_keys(v) for v in value]
    return value


def package_constants(repo: str, commit: str, path: str) -> dict:
    """The string constants of the test's package (its non-test files), which tables use."""
    folder = path.rsplit("/", 1)[0]
    names = subprocess.check_output(
        ["git", "-C", repo, "ls-tree", "--name-only", f"{commit}:{folder}"], text=True
    ).split()
    sources = [
        subprocess.check_output(["git", "-C", repo, "show", f"{commit}:{folder}/{name}"], text=True)
        for name in names
        if name.endswith(".go") and not name.endswith("_test.go")
    ]
    return constants(*sources)


def package_tests(repo: str, commit: str, path: str) -> str:
    """The test files of the test's package, whose helpers (``thinkTrue()``) tables call."""
    folder = path.rsplit("/", 1)[0]
    names = subprocess.check_output(
        ["git", "-C", repo, "ls-tree", "--name-only", f"{commit}:{folder}"], text=True
    ).split()
    return "\n".join(
        subprocess.check_output(["git", "-C", repo, "show", f"{commit}:{folder}/{name}"], text=True)
        for name in names
        if name.endswith("_test.go")
    )


# the model publishers' chat templates Ollama's tests check its renderers against (templates/)
TEMPLATES = [
    "gemma4_e2b_chat_template.jinja2",
    "gemma4_31b_chat_template.jinja2",
    "laguna_v2_chat_template.jinja2",
    "laguna_v8_chat_template.jinja2",
    "glimmer_chat_template.jinja",
]

# the functions that map a Modelfile's RENDERER and PARSER names to Ollama's built-in code
REGISTRY = {
    "renderers": ("model/renderers/renderer.go", "rendererForName"),
    "parsers": ("model/parsers/parsers.go", "ParserForName"),
}


def registry(repo: str, commit: str) -> dict:
    """The names each of Ollama's lookup functions knows: the string cases of its switch."""
    data: dict = {"source": {"repository": "github.com/ollama/ollama", "commit": commit}}
    for kind, (path, func) in REGISTRY.items():
        text = subprocess.check_output(["git", "-C", repo, "show", f"{commit}:{path}"], text=True)
        body = text[text.index(f"func {func}(") :]
        body = body[: body.index("\n}\n")]
        names = []
        for labels in re.findall(r"^\s*case ([^:]+):", body, re.M):
            names += [n for n in re.findall(r'"([^"]+)"', labels) if n not in names]
        data[kind] = {"from": f"{path} {func}", "names": names}
    return data


def main(repo: str, commit: str = "HEAD", *only: str) -> None:
    """Writes every file of ``TABLES``, or only the ones named after the commit."""
    commit = subprocess.check_output(["git", "-C", repo, "rev-parse", commit], text=True).strip()
    if not only or "registry.json" in only:
        text = json.dumps(registry(repo, commit), indent=1) + "\n"
        (HERE / "registry.json").write_text(text)
    if not only or "templates" in only:
        (HERE / "templates").mkdir(exist_ok=True)
        for name in TEMPLATES:
            path = f"{commit}:model/renderers/testdata/{name}"
            text = subprocess.check_output(["git", "-C", repo, "show", path])
            (HERE / "templates" / name).write_bytes(text)
    for output, tables in TABLES.items():
        if only and output not in only:
            continue
        data = {
            "source": {"repository": "github.com/ollama/ollama", "commit": commit},
            "tables": {},
        }
        for section, path, func, var, *setup in tables:
            text = subprocess.check_output(
                ["git", "-C", repo, "show", f"{commit}:{path}"], text=True
            )
            cases = table(
                text,
                func,
                var,
                package_constants(repo, commit, path),
                package_tests(repo, commit, path),
            )
            data["tables"][section] = {"from": f"{path} {func or var}", "cases": api_keys(cases)}
            if setup:  # how the test builds its parser, outside the table
                data["tables"][section]["setup"] = setup[0]
        previous = HERE / output
        if previous.exists():  # cases transcribed by hand (tests that are not tables) are kept
            kept = json.loads(previous.read_text()).get("transcribed")
            if kept:
                data["transcribed"] = kept
        (HERE / output).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
