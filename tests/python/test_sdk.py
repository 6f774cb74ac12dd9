"""The official openai Python SDK against the gateway: chat, stream, fake stream, tools, errors."""
import openai
import pytest

from conftest import received, scenario

MULTIBYTE = "Python 测试 🐍 — façade, ñandú, 日本語のテキスト."


def user(tag, model="gpt-test"):
    return {"model": model, "messages": [{"role": "user", "content": f"hello {tag}"}]}


def test_non_streaming(client):
    tag = scenario(content=MULTIBYTE)
    completion = client.chat.completions.create(**user(tag), temperature=0.1, extra_body={"top_k": 2})
    assert completion.choices[0].message.content == MULTIBYTE
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    upstream = received(tag)[0]
    assert upstream["body"]["top_k"] == 2
    assert upstream["headers"]["x-stainless-lang"] == "python"


def test_streaming_passthrough(client):
    tag = scenario(content=MULTIBYTE, chunk_chars=3)
    stream = client.chat.completions.create(**user(tag), stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == MULTIBYTE
    assert received(tag)[0]["body"]["stream"] is True


def test_fake_stream_with_heartbeats(client):
    tag = scenario(content=MULTIBYTE, delay_ms=700)
    stream = client.chat.completions.create(
        **user(tag, model="fake-python"), stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == MULTIBYTE
    assert usage is not None and usage.prompt_tokens == 11
    upstream = received(tag)[0]
    assert upstream["body"]["stream"] is False


def test_fake_stream_tool_calls(client):
    calls = [{"id": "call_py", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"ümlaut"}'}}]
    tag = scenario(tool_calls=calls)
    stream = client.chat.completions.create(**user(tag, model="fake-tools"), stream=True)
    name, arguments, call_id, finish = "", "", None, None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert delta.index == 0
            call_id = delta.id or call_id
            name += (delta.function and delta.function.name) or ""
            arguments += (delta.function and delta.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (call_id, name, arguments, finish) == ("call_py", "lookup", '{"q":"ümlaut"}', "tool_calls")


def test_public_mode_forwards_client_key(public_client):
    tag = scenario()
    public_client.chat.completions.create(**user(tag))
    assert received(tag)[0]["headers"]["authorization"] == "Bearer sk-python-user"


def test_errors_map_to_sdk_exceptions(client):
    bad = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(**user("x"))
    assert err.value.status_code == 401
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-test", messages=[])
    tag = scenario(status=429)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**user(tag))
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(**user(scenario(malformed=True)))
    assert err.value.status_code == 502


def test_gemini_chat_and_native_stream(client):
    tag = scenario(content=MULTIBYTE)
    completion = client.chat.completions.create(**user(tag, model="gemini-2.5-flash"), max_tokens=30)
    assert completion.choices[0].message.content == MULTIBYTE
    upstream = received(tag)[0]
    assert upstream["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert upstream["body"]["generationConfig"]["maxOutputTokens"] == 30

    tag = scenario(content=MULTIBYTE, chunk_chars=2)
    stream = client.chat.completions.create(**user(tag, model="gemini-2.5-flash"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == MULTIBYTE


def test_dashscope_fake_and_native_stream(public_client):
    tag = scenario(content=MULTIBYTE, delay_ms=300)
    stream = public_client.chat.completions.create(**user(tag, model="qwen-plus"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == MULTIBYTE
    assert received(tag)[0]["headers"].get("x-dashscope-sse") is None

    tag = scenario(content=MULTIBYTE)
    stream = public_client.chat.completions.create(
        **user(tag, model="qwen-plus"), stream=True, extra_headers={"x-fake-stream": "false"}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == MULTIBYTE
    assert received(tag)[0]["headers"]["x-dashscope-sse"] == "enable"


def test_models_list_and_unknown_model(client):
    ids = [m.id for m in client.models.list()]
    assert "gemini-2.5-flash" in ids and "gpt-mock-1" in ids
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**user("x", model="mistral-large"))
    assert "mistral-large" in str(err.value)


def test_gemini_bad_client_key(public_client):
    bad = openai.OpenAI(base_url=public_client.base_url, api_key="bad-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(**user("x", model="gemini-2.0-flash"))


def test_provider_tool_calls(client, public_client):
    calls = [{"id": "call_g", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "Zürich"}'}}]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    tag = scenario(tool_calls=calls)
    completion = client.chat.completions.create(**user(tag, model="gemini-2.5-flash"), tools=tools)
    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("lookup", '{"q":"Zürich"}')
    assert completion.choices[0].finish_reason == "tool_calls"
    assert received(tag)[0]["body"]["tools"][0]["functionDeclarations"][0]["name"] == "lookup"

    tag = scenario(tool_calls=calls)
    stream = public_client.chat.completions.create(
        **user(tag, model="qwen-plus"), tools=tools, stream=True, extra_headers={"x-fake-stream": "false"}
    )
    name, arguments = "", ""
    for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (delta.function and delta.function.name) or ""
            arguments += (delta.function and delta.function.arguments) or ""
    assert (name, arguments) == ("lookup", '{"q": "Zürich"}')


def test_gemini3_thought_signature_round_trip(client):
    """A Gemini 3 tool loop through the Python SDK: the signature arrives in the tool call's
    extra_content and returns, with the message passed back as the SDK gave it."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "gateways"}'},
            "thought_signature": "py-sig-3=="}
    tag = scenario(tool_calls=[call])
    first = client.chat.completions.create(
        model="gemini-3-flash-preview", tools=tools, messages=[{"role": "user", "content": f"look up {tag}"}]
    )
    message = first.choices[0].message
    tool_call = message.tool_calls[0]
    assert tool_call.model_extra["extra_content"] == {"google": {"thought_signature": "py-sig-3=="}}
    tag2 = scenario(content="Found it.")
    second = client.chat.completions.create(
        model="gemini-3-flash-preview",
        tools=tools,
        messages=[
            {"role": "user", "content": f"look up {tag2}"},
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": tool_call.id, "content": '{"hits": 3}'},
        ],
    )
    assert second.choices[0].message.content == "Found it."
    parts = received(tag2)[0]["body"]["contents"][1]["parts"]
    assert parts == [{"functionCall": {"name": "lookup", "args": {"q": "gateways"}}, "thoughtSignature": "py-sig-3=="}]


def test_gemini_pydantic_structured_output(client):
    """`chat.completions.parse` with nested pydantic models: the schema reaches Gemini with its
    $defs inlined and Optional fields nullable, and the SDK parses the answer."""
    from typing import List, Literal, Optional

    from pydantic import BaseModel

    class Address(BaseModel):
        city: str
        zip: Optional[str]

    class Item(BaseModel):
        sku: str
        qty: int

    class Order(BaseModel):
        id: str
        billing: Address
        shipping: Address
        items: List[Item]
        status: Literal["open", "paid"]

    answer = {"id": "o-2", "billing": {"city": "Basel", "zip": None}, "shipping": {"city": "Chur", "zip": "7000"},
              "items": [{"sku": "b", "qty": 1}], "status": "open"}
    tag = scenario(content=__import__("json").dumps(answer))
    completion = client.chat.completions.parse(
        model="gemini-2.5-flash", response_format=Order, messages=[{"role": "user", "content": f"order {tag}"}]
    )
    assert completion.choices[0].message.parsed == Order(**answer)
    schema = received(tag)[0]["body"]["generationConfig"]["responseSchema"]
    text = __import__("json").dumps(schema)
    assert "$ref" not in text and "$defs" not in text and "additionalProperties" not in text
    for field in ("billing", "shipping"):
        assert schema["properties"][field]["properties"]["zip"]["nullable"] is True
        assert schema["properties"][field]["required"] == ["city", "zip"]
    assert schema["properties"]["items"]["items"]["properties"]["qty"]["type"] == "integer"
    assert schema["properties"]["status"]["enum"] == ["open", "paid"]
