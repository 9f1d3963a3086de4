"""Family templates print what Ollama's library templates print (answers recorded from Go
running Ollama's own template files), and GGUF chat templates are recognised by behaviour."""

import json
from pathlib import Path

import pytest

from ollamakit.lib.templates import FAMILIES, detect_template, execute, parse_template, render_jinja

REFERENCE = json.loads((Path(__file__).parent / "reference" / "go_answers.json").read_text())
CONVERSATIONS = REFERENCE["conversations"]

BASIC = CONVERSATIONS["basic"]  # system, user, assistant, user


@pytest.mark.parametrize(
    "case",
    REFERENCE["families"],
    ids=lambda c: f"{c['family']}-{c['conversation']}{'-tools' if c['tools'] else ''}",
)
def test_family_prompt_matches_ollama(case):
    tools = REFERENCE["tools"] if case["tools"] else None
    prompt = execute(FAMILIES[case["family"]].template, CONVERSATIONS[case["conversation"]], tools)
    assert prompt == case["prompt"]


def test_covers_the_families_ollama_detects():
    assert set(FAMILIES) == {
        "chatml",
        "zephyr",
        "openchat",
        "mistral-instruct",
        "starcoder2-instruct",
        "llama2-chat",
        "codellama-70b-instruct",
        "alpaca",
        "chatqa",
        "gemma-instruct",
        "gemma3-instruct",
        "llama3-instruct",
        "granite-instruct",
        "magicoder",
        "alfred",
        "phi-3",
        "falcon-instruct",
        "solar-instruct",
        "command-r",
        "vicuna",
    }


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "chatml",
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            "llama3-instruct",
            "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nU1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|><|start_header_id|>assistant"
            "<|end_header_id|>\n\n",
        ),
        (
            "gemma3-instruct",
            "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
            "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n\n",
        ),
        ("mistral-instruct", "[INST] S\n\nU1[/INST] A1</s>[INST] U2[/INST]"),
        (
            "llama2-chat",
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1</s><s>[INST] <<SYS>><</SYS>>\n\nU2 [/INST]",
        ),
        ("vicuna", "S\n\nUSER: U1\nASSISTANT: A1</s>\nUSER: U2\nASSISTANT:"),
    ],
)
def test_known_prompts(name, expected):
    assert execute(FAMILIES[name].template, BASIC) == expected


def test_family_params_are_stop_lists():
    assert FAMILIES["chatml"].params == {"stop": ["<|im_start|>", "<|im_end|>"]}
    assert FAMILIES["gemma3-instruct"].params == {"stop": ["<end_of_turn>"]}
    for fam in FAMILIES.values():
        parse_template(fam.template)  # each is a valid template
        assert fam.params["stop"] and all(isinstance(s, str) for s in fam.params["stop"])


@pytest.mark.real_model
def test_smollm2_chat_template_is_chatml(smollm2_chat_template):
    name, template, params = detect_template(smollm2_chat_template)
    assert name == "chatml"
    assert template == FAMILIES["chatml"].template
    assert params == {"stop": ["<|im_start|>", "<|im_end|>"]}


@pytest.mark.real_model
def test_smollm2_jinja_and_chatml_give_the_same_prompt(smollm2_chat_template):
    chatml = FAMILIES["chatml"].template
    assert render_jinja(smollm2_chat_template, BASIC) == execute(chatml, BASIC)
    # The known difference: without a system message SmolLM2's own template adds a default one.
    no_system = BASIC[1:]
    jinja = render_jinja(smollm2_chat_template, no_system)
    go = execute(chatml, no_system)
    assert jinja.endswith(go)
    assert jinja[: -len(go)].startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    )


# Chat templates written the way model publishers write them, for families we must recognise.
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
GEMMA3 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}"
    "{% endif %}{% for message in loop_messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize(
    "source,family",
    [
        (LLAMA3, "llama3-instruct"),
        (GEMMA, "gemma-instruct"),
        (GEMMA3, "gemma3-instruct"),
        (PHI3, "phi-3"),
        (ZEPHYR, "zephyr"),
        (MISTRAL, "mistral-instruct"),
    ],
)
def test_detects_families_by_behaviour(source, family):
    found = detect_template(source)
    assert found is not None and found[0] == family
    assert found[2] == FAMILIES[family].params


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "hello world",
        "{% if %}",
        "{{ messages[0]['content'] }}",
        "{{ ''.__class__.__mro__ }}",
        "{% for m in messages %}<|User|>{{ m['content'] }}<|Assistant|>{% endfor %}",
        None,
        42,
    ],
)
def test_returns_none_for_anything_else(garbage):
    assert detect_template(garbage) is None
