"""The official openai Python SDK against /v1/responses: create, stream, a stateful tool loop."""
import openai
import pytest

from conftest import received, scenario

TOOLS = [{"type": "function", "name": "lookup", "description": "Look up",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]


def test_create_and_stream(client):
    tag = scenario(content="Python Responses ✓")
    response = client.responses.create(model="gpt-resp-py", input=f"hi {tag}", store=False)
    assert response.output_text == "Python Responses ✓"
    assert response.status == "completed" and response.usage.total_tokens > 0
    assert received(tag)[0]["body"]["messages"] == [{"role": "user", "content": f"hi {tag}"}]

    tag = scenario(content="streamed from python", chunk_chars=5)
    deltas = []
    with client.responses.stream(model="gpt-resp-py", input=tag, store=False,
                                 extra_headers={"x-fake-stream": "false"}) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "streamed from python"
    assert final.status == "completed"


def test_stateful_tool_loop_on_gemini(client):
    call = {"id": "call_py", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "workers"}'}}
    tag = scenario(tool_calls=[call])
    first = client.responses.create(model="gemini-2.5-flash", tools=TOOLS, instructions=f"tools {tag}", input="find workers")
    fc = next(item for item in first.output if item.type == "function_call")
    assert (fc.name, fc.arguments) == ("lookup", '{"q": "workers"}') or (fc.name, fc.arguments) == ("lookup", '{"q":"workers"}')
    tag2 = scenario(content="Found 2.")
    second = client.responses.create(
        model="gemini-2.5-flash", tools=TOOLS, previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": f"2 hits {tag2}"}],
    )
    assert second.output_text == "Found 2."
    contents = received(tag2)[0]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "lookup", "args": {"q": "workers"}}
    assert client.responses.retrieve(second.id).output_text == "Found 2."
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
