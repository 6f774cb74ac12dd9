import json
import os
import re
import urllib.request
import uuid

import pytest
from openai import OpenAI

GATEWAY = os.environ.get("GATEWAY_URL")
PUBLIC_GATEWAY = os.environ.get("PUBLIC_GATEWAY_URL")
MOCK = os.environ.get("MOCK_URL")
ACCESS_TOKEN = "test-access-token"
SERVER_KEY = "sk-server-secret-key"

if not (GATEWAY and PUBLIC_GATEWAY and MOCK):
    raise RuntimeError("run the end-to-end tests through `npm test` (tests/run.mjs starts the servers)")


def scenario(**knobs):
    """Registers a mock upstream scenario; returns the tag to put in a message."""
    sid = "s" + uuid.uuid4().hex
    req = urllib.request.Request(
        f"{MOCK}/__mock/scenario", data=json.dumps({"id": sid, **knobs}).encode(), method="POST"
    )
    urllib.request.urlopen(req).read()
    return f"mock:{sid}"


def received(tag):
    sid = tag.split(":", 1)[1]
    with urllib.request.urlopen(f"{MOCK}/__mock/requests?tag={sid}") as res:
        return json.load(res)


@pytest.fixture
def client():
    return OpenAI(base_url=f"{GATEWAY}/v1", api_key=ACCESS_TOKEN, max_retries=0)


@pytest.fixture
def public_client():
    return OpenAI(base_url=f"{PUBLIC_GATEWAY}/v1", api_key="sk-python-user", max_retries=0)
