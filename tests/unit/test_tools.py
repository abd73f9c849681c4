"""Assistants as MCP tools: names and argument schemas."""

from __future__ import annotations

from app.services.tools import MESSAGES_ARGUMENT, NAME_MAX, input_schema, tool_name


def test_tool_names_fit_mcp() -> None:
    assert tool_name("counter") == "counter"
    assert tool_name("my counter!") == "my_counter"
    assert tool_name("a/b c.d-e") == "a_b_c.d-e"
    assert tool_name("¡¿") == "assistant"
    assert len(tool_name("x" * 300)) == NAME_MAX


def test_a_chat_graph_asks_for_one_message() -> None:
    chat = {
        "type": "object",
        "properties": {"messages": {"type": "array", "items": {"$ref": "#/$defs/AIMessage"}}},
        "$defs": {"AIMessage": {"type": "object"}},
    }
    schema = input_schema(chat)
    assert schema == {"type": "object", "properties": {"messages": MESSAGES_ARGUMENT}}
    # Definitions something else still refers to stay.
    chat["properties"]["last"] = {"$ref": "#/$defs/AIMessage"}
    assert "$defs" in input_schema(chat)


def test_a_graph_without_a_usable_schema_takes_any_object() -> None:
    assert input_schema(None) == {"type": "object"}
    assert input_schema({"type": "string"}) == {"type": "object"}
    counted = {"properties": {"steps": {"type": "integer"}}}
    assert input_schema(counted) == {**counted, "type": "object"}
