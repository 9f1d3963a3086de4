"""The Modelfile parser: grammar, quoting, errors (with Ollama's exact messages) and typing."""

import pytest
from ollamakit_cli.modelfile import (
    INVALID_COMMAND,
    INVALID_ROLE,
    Instruction,
    Modelfile,
    ModelfileError,
    parameter_value,
    parameters,
    parse,
    quote,
    requires_version,
)


def values(text):
    return [(i.keyword, i.name, i.value) for i in parse(text)]


def error(text):
    with pytest.raises(ModelfileError) as info:
        parse(text)
    return str(info.value)


def test_every_instruction_in_any_case():
    text = """
from llama3.2
Parameter temperature 0.7
TEMPLATE {{ .Prompt }}
system You are terse.
ADAPTER ./lora.gguf
license MIT
MESSAGE user Hi there
message assistant Hello!
REQUIRES 0.14.0
DRAFT ./draft.gguf
RENDERER qwen3
PARSER qwen3
"""
    assert values(text) == [
        ("from", "", "llama3.2"),
        ("parameter", "temperature", "0.7"),
        ("template", "", "{{ .Prompt }}"),
        ("system", "", "You are terse."),
        ("adapter", "", "./lora.gguf"),
        ("license", "", "MIT"),
        ("message", "user", "Hi there"),
        ("message", "assistant", "Hello!"),
        ("requires", "", "0.14.0"),
        ("draft", "", "./draft.gguf"),
        ("renderer", "", "qwen3"),
        ("parser", "", "qwen3"),
    ]


def test_comments_blank_lines_bom_and_crlf():
    text = "\ufeff# a comment\r\n\r\n  # indented comment\r\nFROM base # not a comment\r\n\tSYSTEM  spaced out \r\n"
    assert values(text) == [("from", "", "base # not a comment"), ("system", "", "spaced out")]


def test_line_numbers_are_remembered():
    modelfile = parse("# header\n\nFROM base\nSYSTEM hi\n")
    assert [i.line for i in modelfile] == [3, 4]


def test_double_quotes_keep_inner_spaces_and_may_span_lines():
    assert values('FROM x\nSYSTEM "  padded  "\n')[1][2] == "  padded  "
    assert values('FROM x\nSYSTEM "first\nsecond"\nPARAMETER top_k 1\n')[1:] == [
        ("system", "", "first\nsecond"),
        ("parameter", "top_k", "1"),
    ]


def test_triple_quotes_span_lines_and_may_hold_quotes():
    text = (
        'FROM x\nTEMPLATE """{{ if .System }}"{{ .System }}"\n{{ end }}{{ .Prompt }}"""\nSYSTEM s\n'
    )
    assert values(text)[1:] == [
        ("template", "", '{{ if .System }}"{{ .System }}"\n{{ end }}{{ .Prompt }}'),
        ("system", "", "s"),
    ]


def test_triple_quoted_value_keeps_blank_lines_and_comment_like_lines():
    text = 'FROM x\nSYSTEM """\nline one\n\n# not a comment\n"""\n'
    assert values(text)[1][2] == "\nline one\n\n# not a comment\n"


def test_quote_closes_only_at_a_line_end():
    # As in Ollama: text after a closing quote keeps the value open until a line ends with one.
    assert values('FROM x\nSYSTEM "a" b "c"\n')[1][2] == 'a" b "c'
    assert values('FROM x\nSYSTEM say "hi"\n')[1][2] == 'say "hi"'


def test_unterminated_quotes_fail():
    assert error('FROM x\nSYSTEM """never closed\n') == '(line 2): unterminated """ quoted value'
    assert error('FROM x\nSYSTEM "open\n') == '(line 2): unterminated " quoted value'


def test_exact_error_messages():
    assert error("SYSTEM hi\n") == "no FROM line"
    assert error("") == "no FROM line"
    assert error("FROM x\nBOGUS y\n") == f"(line 2): {INVALID_COMMAND}"
    assert INVALID_COMMAND.startswith('command must be one of "from", "license"')
    assert error("FROM x\nMESSAGE robot hi\n") == f"(line 2): {INVALID_ROLE}"
    assert INVALID_ROLE == 'message role must be one of "system", "user", or "assistant"'


def test_malformed_lines_fail_with_their_line():
    assert error("FROM x\nFROM: y\n") == f"(line 2): {INVALID_COMMAND}"
    assert error("FROM x\nSYSTEM\n").startswith("(line 2): missing value for SYSTEM")
    assert error("FROM x\n\nPARAMETER temperature\n").startswith("(line 3): PARAMETER needs a name")
    assert error("FROM x\nPARAMETER bad-name 1\n").startswith("(line 2): PARAMETER needs a name")
    assert error("FROM x\nMESSAGE user\n") == f"(line 2): {INVALID_ROLE}"


def test_empty_value_after_a_space_is_allowed():
    assert values("FROM x\nSYSTEM \n")[1] == ("system", "", "")


def test_parameter_names_allow_digits_and_underscores():
    assert values("FROM x\nPARAMETER num_ctx2 5\n")[1] == ("parameter", "num_ctx2", "5")


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("num_ctx", "4096", 4096),
        ("seed", "-1", -1),
        ("top_k", "+40", 40),
        ("temperature", "0.7", 0.7),
        ("top_p", "1", 1.0),
        ("min_p", "1e-2", 0.01),
        ("repeat_penalty", ".5", 0.5),
        ("use_mmap", "true", True),
        ("use_mmap", "F", False),
        ("use_mmap", "0", False),
        ("stop", "<|im_end|>", ["<|im_end|>"]),
    ],
)
def test_parameter_values_are_typed(name, text, expected):
    value = parameter_value(name, text)
    assert value == expected and type(value) is type(expected)


def test_floats_are_single_precision_shortest_text():
    # Options are float32 in Ollama: 0.1234567891 is stored as the float32 nearest it.
    assert parameter_value("temperature", "0.1234567891") == 0.12345679


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("num_ctx", "4k", "invalid int value [4k]"),
        ("num_ctx", "1.5", "invalid int value [1.5]"),
        ("num_ctx", "99999999999999999999", "invalid int value [99999999999999999999]"),
        ("temperature", "warm", "invalid float value [warm]"),
        ("temperature", "nan", "invalid float value [nan]"),
        ("temperature", "1e39", "invalid float value [1e39]"),
        ("use_mmap", "yes", "invalid bool value [yes]"),
        ("tfs_z", "1", "unknown parameter 'tfs_z'"),
    ],
)
def test_bad_parameter_values(name, text, message):
    with pytest.raises(ModelfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parameter_value(name, text)


def test_parameters_accumulate_stop_and_keep_last_scalar():
    modelfile = parse(
        "FROM x\nPARAMETER stop <|im_start|>\nPARAMETER temperature 1\n"
        'PARAMETER stop "<|im_end|>"\nPARAMETER temperature 0.2\n'
    )
    assert parameters(modelfile) == {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.2}


def test_deprecated_parameters_warn_and_are_skipped():
    warnings = []
    modelfile = parse("FROM x\nPARAMETER mirostat 2\nPARAMETER top_k 3\n")
    assert parameters(modelfile, warnings.append) == {"top_k": 3}
    assert warnings == ["warning: parameter mirostat is deprecated"]


def test_parameter_errors_carry_the_line():
    with pytest.raises(ModelfileError) as info:
        parameters(parse("FROM x\n\nPARAMETER numa true\n"))
    assert str(info.value) == "(line 3): unknown parameter 'numa'"


@pytest.mark.parametrize(
    "text, expected",
    [("0.14.0", "0.14.0"), ("v1.2.3-rc.1+b5", "1.2.3-rc.1+b5"), ("1", "1"), ("1.2", "1.2")],
)
def test_requires_accepts_semver(text, expected):
    assert requires_version(text) == expected


@pytest.mark.parametrize("text", ["latest", "1.2.3.4", "01.2.3", "1.2-rc1", ""])
def test_requires_refuses_other_text(text):
    with pytest.raises(ModelfileError, match=r"requires must be a valid semver \(e.g. 0.14.0\)"):
        requires_version(text)


def test_quote_rules_match_ollama_show():
    assert quote("<|im_end|>") == "<|im_end|>"
    assert quote("two words") == "two words"
    assert quote(" lead") == '" lead"'
    assert quote("a\nb") == '"a\nb"'
    assert quote('say "x"\nnow') == '"""say "x"\nnow"""'


def test_render_and_parse_round_trip():
    original = parse(
        'FROM ./m.gguf\nTEMPLATE """{{ "x" }}\n{{ .Prompt }}"""\nSYSTEM " padded"\n'
        "PARAMETER stop <|im_end|>\nMESSAGE user hi there\nLICENSE MIT\n"
    )
    text = str(original)
    assert text.splitlines()[0] == "FROM ./m.gguf"
    assert [(i.keyword, i.name, i.value) for i in parse(text)] == [
        (i.keyword, i.name, i.value) for i in original
    ]


def test_bytes_input_is_decoded_and_bounded():
    assert values(b"FROM x\n") == [("from", "", "x")]
    with pytest.raises(ModelfileError, match="not UTF-8"):
        parse(b"FROM \xff\n")


def test_instruction_and_modelfile_types():
    modelfile = Modelfile([Instruction("from", "x"), Instruction("parameter", "1", "top_k")])
    assert modelfile.all("parameter")[0].name == "top_k"
    assert str(modelfile) == "FROM x\nPARAMETER top_k 1\n"
