"""A small client for OpenAI-compatible /v1/chat/completions endpoints (OpenAI, vLLM, TGI, ...).

Standard library only (urllib). Retries 429, 5xx, timeouts and connection errors with exponential
backoff and jitter, honouring Retry-After (seconds) when the server sends one; any other HTTP error
fails at once. The API key is read from an environment variable, sent as a Bearer token and never
logged or echoed in errors. Used by the translate phase (openai backend) and the judge family.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time

log = logging.getLogger(__name__)


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ChatError(RuntimeError):
    """The request failed for good: a non-retryable HTTP status, or retries exhausted."""


class MalformedResponse(ValueError):
    """The server answered, but not with a chat completion whose content is a string."""


def retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        name: str = "openai",
    ):
        if not model:
            raise ValueError("chat client: empty model; name the model the endpoint serves")
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError("chat client: need max_retries >= 0 and timeout_s > 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout_s, self.max_retries = model, float(timeout_s), int(max_retries)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.temperature, self.name = float(temperature), name
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    def _post(self, body: bytes) -> dict:
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            if e.code == 429 or e.code >= 500:
                raise RetryableError(f"HTTP {e.code}", retry_after(e.headers.get("Retry-After"))) from None
            raise ChatError(f"HTTP {e.code}") from None
        except TimeoutError:  # socket.timeout is an alias
            raise RetryableError("timeout") from None
        except (urllib.error.URLError, ConnectionError) as e:
            raise RetryableError(f"connection error ({getattr(e, 'reason', e)})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponse("response body is not JSON") from None

    def complete(self, messages: list[dict]) -> str:
        """The assistant's answer to `messages`; ChatError or MalformedResponse when there is none."""
        body = json.dumps(
            {"model": self.model, "temperature": self.temperature, "messages": messages}
        ).encode()
        rng = random.Random()
        for attempt in range(self.max_retries + 1):
            try:
                data = self._post(body)
                break
            except RetryableError as e:
                if attempt == self.max_retries:
                    raise ChatError(f"{e} after {attempt + 1} attempts") from None
                wait = e.retry_after
                if wait is None:
                    wait = self.backoff_s * 2**attempt * (0.5 + rng.random())
                wait = min(wait, self.max_backoff_s)
                log.warning("%s: %s, retry %d/%d in %.1fs", self.name, e, attempt + 1, self.max_retries, wait)
                time.sleep(wait)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise MalformedResponse("response has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise MalformedResponse("message content is not a string")
        return content
