"""Prompt formats of the chat families Ollama recognises in GGUF files, as our own Go templates.

Each template prints exactly what Ollama's library template for the family prints (the same
special tokens, the same newlines, the same quirks such as gemma3's system prompt riding on
the first user turn), and each family carries the stop sequences Ollama stores with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    name: str
    template: str
    stop: tuple[str, ...]
    # Strings every prompt of the family contains; detection requires them in the output.
    markers: tuple[str, ...] = field(default=())

    @property
    def params(self) -> dict:
        return {"stop": list(self.stop)}


# Several older formats print all system messages once, in front of the first user turn.
_HOLD_SYSTEM = (
    '{{- $sys := "" }}'
    "{{- range .Messages }}"
    '{{- if eq .Role "system" }}{{ $sys = (or (and $sys (printf "%s\\n\\n%s" $sys .Content)) .Content) }}'
)

_COMMAND_R_TOOLS_PREAMBLE = """# Safety Preamble
The instructions in this section override those in the task description and style guide sections. Don't answer questions that are harmful or immoral.

# System Preamble
## Basic Rules
You are a powerful conversational AI trained by Cohere to help people. You are augmented by a number of tools, and your job is to use and consume the output of these tools to best help the user. You will see a conversation history between yourself and a user, ending with an utterance from the user. You will then see a specific instruction instructing you what kind of response to generate. When you answer the user's requests, you cite your sources in your answers, according to those instructions.

"""

_COMMAND_R_ACTION_PROMPT = """<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Write 'Action:' followed by a json-formatted list of actions that you want to perform in order to produce a good response to the user's last input. You can use any of the supplied tools any number of times, but you should aim to execute the minimum number of necessary actions for the input. You should use the `directly-answer` tool if calling the other tools is unnecessary. The list of actions you want to call should be formatted as a list of json objects, for example:
```json
[
    {
        "tool_name": title of the tool in the specification,
        "parameters": a dict of parameters to input into the tool as they are defined in the specs, or {} if it takes no parameters
    }
]```"""

FAMILIES: dict[str, Family] = {}


def _family(name: str, template: str, stop, markers=()):
    FAMILIES[name] = Family(name, template, tuple(stop), tuple(markers))


_family(
    "chatml",
    "{{- range $m := .Messages }}<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n",
    ["<|im_start|>", "<|im_end|>"],
    ["<|im_start|>", "<|im_end|>"],
)

_family(
    "zephyr",
    "{{- range $m := .Messages }}<|{{ $m.Role }}|>\n{{ $m.Content }}</s>\n{{ end }}<|assistant|>\n",
    ["<|system|>", "</s>", "<|user|>", "<|assistant|>"],
    ["<|user|>", "<|assistant|>", "</s>"],
)

_family(
    "phi-3",
    "{{- range $m := .Messages }}<|{{ $m.Role }}|>\n{{ $m.Content }}<|end|>\n{{ end }}<|assistant|>\n",
    ["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"],
    ["<|user|>", "<|end|>"],
)

_family(
    "llama3-instruct",
    "{{- range $m := .Messages }}<|start_header_id|>{{ $m.Role }}<|end_header_id|>\n\n"
    "{{ $m.Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    ["<|start_header_id|>", "<|eot_id|>"],
)

_family(
    "alfred",
    "{{- range $m := .Messages }}<start_{{ $m.Role }}>{{ $m.Content }}<end_message>{{ end }}<start_assistant>",
    ["<start_system>", "<end_message>", "<start_user>", "<start_assistant>"],
    ["<start_user>", "<end_message>"],
)

_family(
    "openchat",
    '{{- range $m := .Messages }}GPT4 Correct{{ if eq $m.Role "system" }} System:'
    '{{ else if eq $m.Role "user" }} User:{{ else if eq $m.Role "assistant" }} Assistant:{{ end }}'
    " {{ $m.Content }}<|end_of_turn|>{{ end }}GPT4 Correct Assistant:",
    ["<|end_of_turn|>"],
    ["GPT4 Correct User:", "<|end_of_turn|>"],
)

_family(
    "chatqa",
    '{{- range $m := .Messages }}{{ if eq $m.Role "system" }}System:{{ else if eq $m.Role "user" }}User:'
    '{{ else if eq $m.Role "assistant" }}Assistant:{{ end }} {{ $m.Content }}\n\n{{ end }}Assistant:',
    ["System:", "User:", "Assistant:", "<|begin_of_text|>"],
    ["User: ", "Assistant:"],
)

_family(
    "granite-instruct",
    '{{- range $m := .Messages }}{{ if eq $m.Role "system" }}System:{{ else if eq $m.Role "user" }}Question:'
    '{{ else if eq $m.Role "assistant" }}Answer:{{ end }}\n{{ $m.Content }}\n\n{{ end }}Answer:\n',
    ["System:", "Question:", "Answer:"],
    ["Question:\n", "Answer:\n"],
)

_family(
    "codellama-70b-instruct",
    '{{- range $m := .Messages }}Source:{{ if eq $m.Role "system" }} system{{ else if eq $m.Role "user" }} user'
    '{{ else if eq $m.Role "assistant" }} assistant{{ end }}\n\n {{ $m.Content }} <step> {{ end }}'
    "Source: assistant\nDestination: user\n\n ",
    ["Source:", "Destination:", "<step>"],
    ["Source: user", "<step>", "Destination: user"],
)

_family(
    "falcon-instruct",
    '{{- range $m := .Messages }}{{ if eq $m.Role "system" }}System: {{ $m.Content }}\n{{ continue }}{{ end }}'
    '{{ if eq $m.Role "user" }}User:{{ else if eq $m.Role "assistant" }}Falcon:{{ end }}\n'
    "{{ $m.Content }}\n{{ end }}Falcon:\n",
    ["User:", "Assistant:"],
    ["User:\n", "Falcon:"],
)

_family(
    "solar-instruct",
    '{{- range $m := .Messages }}{{ if eq $m.Role "assistant" }}### Assistant:\n{{ $m.Content }}</s>\n\n'
    '{{ continue }}{{ end }}{{ if eq $m.Role "system" }}### System:{{ else if eq $m.Role "user" }}### User:'
    "{{ end }}\n{{ $m.Content }}\n\n{{ end }}### Assistant:\n",
    ["### System:", "### User:", "### Assistant"],
    ["### User:\n", "### Assistant:\n"],
)

_family(
    "mistral-instruct",
    '[INST] {{ range $m := .Messages }}{{ if eq $m.Role "system" }}{{ $m.Content }}\n\n'
    '{{ else if eq $m.Role "user" }}{{ $m.Content }}[/INST]'
    '{{ else if eq $m.Role "assistant" }} {{ $m.Content }}</s>[INST] {{ end }}{{ end }}',
    # Ollama ships this family with ChatML stop words; kept so the params layer matches.
    ["<|im_start|>", "<|im_end|>"],
    ["[INST] ", "[/INST]"],
)

_family(
    "llama2-chat",
    _HOLD_SYSTEM.replace("{{- range .Messages }}", "[INST] {{ range .Messages }}")
    + '{{ else if eq .Role "user" }}<<SYS>>{{ with $sys }}\n{{ . }}\n{{ end }}{{ $sys = "" }}'
    "<</SYS>>\n\n{{ .Content }} [/INST]"
    '{{ else if eq .Role "assistant" }} {{ .Content }}</s><s>[INST] {{ end }}{{ end }}',
    ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"],
    ["[INST] <<SYS>>", "[/INST]"],
)

_family(
    "alpaca",
    _HOLD_SYSTEM + '{{ else if eq .Role "user" }}{{ with $sys }}{{ . }}\n\n{{ end }}{{ $sys = "" }}'
    "### Instruction:\n{{ .Content }}\n\n"
    '{{ else if eq .Role "assistant" }}### Response:\n{{ .Content }}\n\n{{ end }}{{ end }}### Response:\n',
    ["### Instruction:", "### Response"],
    ["### Instruction:\n", "### Response:\n"],
)

_family(
    "vicuna",
    _HOLD_SYSTEM + '{{ else if eq .Role "user" }}{{ with $sys }}{{ . }}\n\n{{ end }}{{ $sys = "" }}'
    "USER: {{ .Content }}\n"
    '{{ else if eq .Role "assistant" }}ASSISTANT: {{ .Content }}</s>\n{{ end }}{{ end }}ASSISTANT:',
    ["USER:", "ASSISTANT:"],
    ["USER: ", "ASSISTANT:"],
)

_family(
    "starcoder2-instruct",
    _HOLD_SYSTEM + '{{ else if eq .Role "user" }}{{ with $sys }}{{ . }}\n\n{{ end }}{{ $sys = "" }}'
    "### Instruction\n{{ .Content }}\n\n"
    '{{ else if eq .Role "assistant" }}### Response\n{{ .Content }}<|endoftext|>\n\n{{ end }}{{ end }}'
    "### Response\n",
    ["### Instruction", "### Response", "<|endoftext|>"],
    ["### Instruction\n", "### Response\n"],
)

_family(
    "magicoder",
    _HOLD_SYSTEM + "{{ continue }}"
    '{{ else if eq .Role "user" }}{{ with $sys }}{{ . }}\n\n{{ end }}{{ $sys = "" }}@@ Instruction'
    '{{ else if eq .Role "assistant" }}@@ Response{{ end }}\n{{ .Content }}\n\n{{ end }}@@ Response\n',
    ["@@ Instruction", "@@ Response"],
    ["@@ Instruction\n", "@@ Response\n"],
)

_family(
    "gemma-instruct",
    _HOLD_SYSTEM + "{{ continue }}"
    '{{ else if eq .Role "user" }}<start_of_turn>user{{ with $sys }}\n{{ . }}{{ end }}{{ $sys = "" }}'
    '{{ else if eq .Role "assistant" }}<start_of_turn>model{{ end }}\n{{ .Content }}<end_of_turn>\n'
    "{{ end }}<start_of_turn>model\n",
    ["<start_of_turn>", "<end_of_turn>"],
    ["<start_of_turn>user\n", "<end_of_turn>"],
)

_family(
    "gemma3-instruct",
    # The system prompt joins the user turn at index 1, which is where it lands when the
    # conversation opens with a system message; the model turn opens after the last message.
    "{{- range $i, $m := .Messages }}"
    '{{ if eq $m.Role "user" }}<start_of_turn>user\n{{ if and (eq $i 1) $.System }}{{ $.System }}\n\n{{ end }}'
    "{{ $m.Content }}<end_of_turn>\n"
    '{{ else if eq $m.Role "assistant" }}<start_of_turn>model\n{{ $m.Content }}<end_of_turn>\n{{ end }}'
    # Ollama's template ends with a newline after the loop, so every prompt does too.
    "{{ if eq (len (slice $.Messages $i)) 1 }}<start_of_turn>model\n{{ end }}{{ end }}\n",
    ["<end_of_turn>"],
    ["<start_of_turn>user\n", "<end_of_turn>"],
)

_family(
    "command-r",
    "{{- if or .Tools .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>"
    "{{- if .Tools }}"
    + _COMMAND_R_TOOLS_PREAMBLE
    + "{{ with .System }}# User Preamble\n{{ . }}{{ end }}\n\n"
    "## Available Tools\nHere is a list of tools that you have available to you:"
    "{{ range .Tools }}\n\n```python\ndef {{ .Function.Name }}("
    "{{ range $name, $p := .Function.Parameters.Properties }}{{ $name }}: {{ $p.Type }}, {{ end }}"
    ") -> List[Dict]:\n    '''{{ .Function.Description }}"
    "{{ with .Function.Parameters.Properties }}\n\n    Args:"
    "{{ range $name, $p := . }}\n        {{ $name }} ({{ $p.Type }}): {{ $p.Description }}{{ end }}{{ end }}"
    "\n    '''\n    pass\n```{{ end }}"
    "{{- else }}{{ .System }}{{ end }}<|END_OF_TURN_TOKEN|>{{ end }}"
    '{{- range .Messages }}{{ if eq .Role "system" }}{{ continue }}{{ end }}<|START_OF_TURN_TOKEN|>'
    '{{- if eq .Role "user" }}<|USER_TOKEN|>{{ .Content }}{{ if $.Tools }}'
    + _COMMAND_R_ACTION_PROMPT
    + "{{ end }}"
    '{{- else if eq .Role "assistant" }}<|CHATBOT_TOKEN|>'
    "{{- if .Content }}{{ .Content }}"
    "{{- else if .ToolCalls }}\nAction: ```json\n["
    '{{ range .ToolCalls }}\n    {\n        "tool_name": "{{ .Function.Name }}",\n'
    '        "parameters": {{ .Function.Arguments }}\n    }{{ end }}\n]```{{ end }}'
    '{{- else if eq .Role "tool" }}<|SYSTEM_TOKEN|><results>\nconsole_output: {{ .Content }}\n</results>'
    "{{- end }}<|END_OF_TURN_TOKEN|>{{ end }}"
    # Ollama's template closes one turn more than it opens here; kept for identical prompts.
    "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n",
    ["<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"],
    ["<|START_OF_TURN_TOKEN|><|USER_TOKEN|>"],
)


def family(name: str) -> Family | None:
    return FAMILIES.get(name)
