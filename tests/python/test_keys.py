"""Access keys through the official `openai` Python SDK: a key created with the admin API calls
the gateway, its refusals arrive as the SDK's own exceptions, and streamed usage is charged."""

import json
import os
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai import OpenAI

from conftest import received, scenario

KEYS = os.environ["KEYS_GATEWAY_URL"]
ADMIN = "keys-admin-token"
SERVER_KEY = "sk-keys-server-key"


def admin(method, path, body=None):
    req = urllib.request.Request(
        f"{KEYS}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def create_key(**fields):
    status, key = admin("POST", "/api/keys", fields)
    assert status == 201, key
    with open(os.path.join(os.environ["TEST_STATE_DIR"], "created-secrets.txt"), "a") as f:
        f.write(key["key"] + "\n")
    return key


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(0.05)


def test_a_key_calls_with_the_server_key_upstream():
    key = create_key(name="python-key", models=["gpt-*"])
    client = OpenAI(base_url=f"{KEYS}/v1", api_key=key["key"], max_retries=0)
    tag = scenario(content="hello python key")
    completion = client.chat.completions.create(
        model="gpt-keys-py", messages=[{"role": "user", "content": tag}]
    )
    assert completion.choices[0].message.content == "hello python key"
    assert received(tag)[0]["key"] == SERVER_KEY

    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "x"}])
    assert denied.value.code == "model_not_allowed"
    assert key["key"] not in str(denied.value.body)

    admin("PATCH", f"/api/keys/{key['id']}", {"enabled": False})
    with pytest.raises(openai.AuthenticationError) as disabled:
        client.chat.completions.create(model="gpt-keys-py", messages=[{"role": "user", "content": "x"}])
    assert disabled.value.code == "key_disabled"

    admin("DELETE", f"/api/keys/{key['id']}")
    with pytest.raises(openai.AuthenticationError) as deleted:
        client.chat.completions.create(model="gpt-keys-py", messages=[{"role": "user", "content": "x"}])
    assert deleted.value.code == "invalid_api_key"


def test_streamed_usage_is_charged_and_the_quota_refuses():
    key = create_key(name="python-tokens", tpd=60)
    client = OpenAI(base_url=f"{KEYS}/v1", api_key=key["key"], max_retries=0)
    usage = {"prompt_tokens": 30, "completion_tokens": 30, "total_tokens": 60}
    stream = client.chat.completions.create(
        model="gpt-keys-py",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": scenario(content="streamed", usage=usage)}],
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed"

    def charged():
        _, live = admin("GET", f"/api/keys/{key['id']}")
        return live["limits_used"]["tokens_day"] == 60

    assert wait_for(charged)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-keys-py", messages=[{"role": "user", "content": "x"}])
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["retry-after"]) >= 1
