"""The official anthropic Python SDK against the gateway's /v1/messages: create, stream, a tool loop."""
import anthropic
import pytest

from conftest import ACCESS_TOKEN, GATEWAY, received, scenario

TOOLS = [{"name": "lookup", "description": "Look something up",
          "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]


@pytest.fixture
def claude():
    return anthropic.Anthropic(base_url=GATEWAY, api_key=ACCESS_TOKEN, max_retries=0)


def test_create_and_stream(claude):
    tag = scenario(content="Hallo aus Python 🐍")
    message = claude.messages.create(model="gpt-claude-py", max_tokens=64, messages=[{"role": "user", "content": tag}])
    assert message.content[0].type == "text" and message.content[0].text == "Hallo aus Python 🐍"
    assert message.stop_reason == "end_turn"
    assert received(tag)[0]["body"]["max_tokens"] == 64

    tag = scenario(content="streamed words here", chunk_chars=3)
    with claude.messages.stream(model="gpt-claude-py", max_tokens=64, messages=[{"role": "user", "content": tag}],
                                extra_headers={"x-fake-stream": "false"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed words here"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_tool_loop_on_gemini(claude):
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "edge"}'}}
    tag = scenario(tool_calls=[call])
    first = claude.messages.create(model="gemini-2.5-flash", max_tokens=64, tools=TOOLS,
                                   messages=[{"role": "user", "content": f"find {tag}"}])
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert (tool_use.name, tool_use.input) == ("lookup", {"q": "edge"})
    tag2 = scenario(content="Found 3.")
    second = claude.messages.create(
        model="gemini-2.5-flash", max_tokens=64, tools=TOOLS,
        messages=[
            {"role": "user", "content": f"find {tag2}"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "3 hits", "is_error": False}]},
        ],
    )
    assert second.content[0].text == "Found 3."
    contents = received(tag2)[0]["body"]["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "lookup", "args": {"q": "edge"}}
    assert contents[2]["parts"] == [{"functionResponse": {"name": "lookup", "response": {"content": "3 hits"}}}]


def test_errors_are_anthropic_errors(claude):
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="gpt-claude-py", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude.messages.create(model="gpt-claude-py", max_tokens=5,
                               messages=[{"role": "user", "content": scenario(status=500)}])
    assert failed.value.body["type"] == "error"
    assert failed.value.body["error"]["type"] == "api_error"
