"""API messages and tools (plain JSON dicts) turned into the values Ollama's templates see:
structs with fixed fields, tool-call arguments and ``.Tools`` that print as JSON."""

from __future__ import annotations

from .values import JsonList, JsonMap, OrderedJson, Struct, StructJson, TypeList


def message_value(msg: dict) -> Struct:
    calls = [tool_call_value(c, n) for n, c in enumerate(msg.get("tool_calls") or [])]
    return Struct(
        "template.templateMessage",
        {
            "Role": msg.get("role") or "",
            "Content": msg.get("content") or "",
            "Thinking": msg.get("thinking") or "",
            "Images": list(msg.get("images") or []),
            "ToolCalls": calls,
            "ToolName": msg.get("tool_name") or "",
            "ToolCallID": msg.get("tool_call_id") or "",
        },
        pointer=True,
    )


def tool_call_value(call: dict, position: int = 0) -> Struct:
    function = (call or {}).get("function") or {}
    arguments = function.get("arguments")
    return Struct(
        "template.templateToolCall",
        {
            "ID": (call or {}).get("id") or "",
            "Function": Struct(
                "template.templateToolCallFunction",
                {
                    "Index": function.get("index", 0) or 0,
                    "Name": function.get("name") or "",
                    "Arguments": JsonMap(arguments if isinstance(arguments, dict) else {}),
                },
            ),
        },
    )


def property_value(prop) -> Struct:
    prop = prop if isinstance(prop, dict) else {}
    kind = prop.get("type")
    types = TypeList(
        [kind] if isinstance(kind, str) else [t for t in (kind or []) if isinstance(t, str)]
    )
    nested = prop.get("properties")
    value = Struct(
        "api.ToolProperty",
        {
            "AnyOf": [property_value(p) for p in prop.get("anyOf") or []],
            "Type": types,
            "Items": prop.get("items"),
            "Description": prop.get("description") or "",
            "Enum": list(prop.get("enum") or []),
            # A nested map keeps its order, as Ollama's ordered map does.
            "Properties": _ordered_properties(nested) if isinstance(nested, dict) else None,
            "Required": list(prop.get("required") or []),
        },
    )
    value.json_value = _property_json(value)
    return value


def _ordered_properties(props: dict) -> OrderedJson:
    return OrderedJson((name, property_value(p)) for name, p in props.items())


def _property_json(prop: Struct) -> OrderedJson:
    f = prop.fields
    out = OrderedJson()
    if f["AnyOf"]:
        out["anyOf"] = f["AnyOf"]
    if f["Type"]:
        out["type"] = f["Type"][0] if len(f["Type"]) == 1 else list(f["Type"])
    if f["Items"] is not None:
        out["items"] = f["Items"]
    if f["Description"]:
        out["description"] = f["Description"]
    if f["Enum"]:
        out["enum"] = f["Enum"]
    if f["Properties"] is not None:
        out["properties"] = f["Properties"]
    if f["Required"]:
        out["required"] = f["Required"]
    return out


def tool_value(tool: dict) -> StructJson:
    tool = tool if isinstance(tool, dict) else {}
    function = tool.get("function") or {}
    params = function.get("parameters") or {}
    props = params.get("properties")
    properties = (
        JsonMap((n, property_value(p)) for n, p in props.items())
        if isinstance(props, dict)
        else None
    )
    parameters = Struct(
        "template.templateToolFunctionParameters",
        {
            "Type": params.get("type") or "",
            "Defs": params.get("$defs"),
            "Items": params.get("items"),
            "Required": list(params.get("required") or []),
            "Properties": properties,
        },
    )
    params_json = OrderedJson(type=parameters.fields["Type"])
    if parameters.fields["Defs"] is not None:
        params_json["$defs"] = parameters.fields["Defs"]
    if parameters.fields["Items"] is not None:
        params_json["items"] = parameters.fields["Items"]
    if parameters.fields["Required"]:
        params_json["required"] = parameters.fields["Required"]
    params_json["properties"] = dict(properties) if properties is not None else None
    parameters.json_value = params_json
    func = Struct(
        "template.templateToolFunction",
        {
            "Name": function.get("name") or "",
            "Description": function.get("description") or "",
            "Parameters": parameters,
        },
    )
    func.json_value = OrderedJson(
        name=func.fields["Name"], description=func.fields["Description"], parameters=parameters
    )
    value = StructJson(
        "template.templateTool",
        {
            "Type": tool.get("type") or "",
            "Items": tool.get("items"),
            "Function": func,
        },
    )
    json_value = OrderedJson(type=value.fields["Type"])
    if value.fields["Items"] is not None:
        json_value["items"] = value.fields["Items"]
    json_value["function"] = func
    value.json_value = json_value
    return value


def tools_value(tools) -> JsonList:
    """``.Tools``: None (no tools in the request) is Go's nil slice, which prints ``null``."""
    return JsonList((tool_value(t) for t in tools or []), is_nil=tools is None)
