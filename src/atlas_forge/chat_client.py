"""The one client for OpenAI-compatible /v1/chat/completions endpoints (OpenAI, vLLM, TGI, ...), and
the one concurrent fan-out over it. Used by the translate phase (openai backend), the generate phase
(openai backend) and the judge family of evaluate.

Standard library only (urllib). Retries 429, 5xx, timeouts and connection errors with exponential
backoff and jitter, honouring Retry-After (seconds) when the server sends one; any other HTTP error
fails at once. The API key is read from an environment variable, sent as a Bearer token and never
logged or echoed in errors.

- OpenAIConfig: the endpoint section of translate and generate params (`<phase>.openai`);
  ReplayConfig: whose cached work their offline `cache` backend replays (`<phase>.replay`).
- make_client(cfg, name): the ChatClient of a config (OpenAIConfig, or the judge's JudgeConfig: any
  object with the same endpoint fields).
- fan_out(client, prompts, concurrency, ...): one request per prompt, `concurrency` in flight,
  results yielded as they land (or in prompt order), the expected failures yielded, not raised.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = "http://localhost:8000/v1"
    model: str = ""
    concurrency: int = 25
    timeout_s: float = 120.0
    max_retries: int = 5
    api_key_env: str = "OPENAI_API_KEY"
    backoff_s: float = 1.0  # first retry waits about this long, doubling each time (with jitter)
    max_backoff_s: float = 60.0
    temperature: float = 0.0

    def validate(self, section: str) -> None:
        from atlas_forge.config import ConfigError

        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError(f"{section}: need concurrency >= 1, max_retries >= 0, timeout_s > 0")


@dataclass(frozen=True)
class ReplayConfig:
    """Whose cached work the offline `cache` backend of translate and generate replays (seed caches
    always count)."""

    backend: str = "openai"
    model: str = ""


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


class EndpointConfig(Protocol):
    """What make_client reads of a config: OpenAIConfig's endpoint fields (the judge's JudgeConfig has
    them too)."""

    base_url: str
    model: str
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_backoff_s: float
    api_key_env: str
    temperature: float


def make_client(cfg: EndpointConfig, name: str) -> ChatClient:
    """The ChatClient of an endpoint config; `name` prefixes its retry warnings."""
    return ChatClient(
        cfg.base_url,
        cfg.model,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        backoff_s=cfg.backoff_s,
        max_backoff_s=cfg.max_backoff_s,
        api_key_env=cfg.api_key_env,
        temperature=cfg.temperature,
        name=name,
    )


# what a request may end in besides an answer: the endpoint failed for good, or answered no content
CHAT_ERRORS: tuple[type[BaseException], ...] = (ChatError, MalformedResponse)


def fan_out(
    client: ChatClient,
    prompts: Sequence[str],
    concurrency: int,
    *,
    parse: Callable[[int, str], Any] | None = None,
    catch: tuple[type[BaseException], ...] = CHAT_ERRORS,
    ordered: bool = False,
) -> Iterator[tuple[int, Any, BaseException | None]]:
    """Ask `client` every prompt (one user message each), `concurrency` requests in flight, and yield
    (index, answer, None) per prompt, or (index, None, error) when the request raised one of `catch`;
    any other exception propagates. The answer is `parse(index, content)` when `parse` is given (run
    in the worker thread, so what it raises is caught the same way), else the content.

    ordered=False yields as requests finish (the caller can cache each answer as it lands);
    ordered=True yields in prompt order. Requests not started yet are cancelled when the caller stops
    early (closes the generator, or an exception propagates); the running ones are waited for."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    def ask(i: int, prompt: str) -> Any:
        content = client.complete([{"role": "user", "content": prompt}])
        return content if parse is None else parse(i, content)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(ask, i, p) for i, p in enumerate(prompts)]
        index = {fut: i for i, fut in enumerate(futures)}
        try:
            for fut in futures if ordered else as_completed(futures):
                try:
                    answer = fut.result()
                except catch as e:
                    yield index[fut], None, e
                else:
                    yield index[fut], answer, None
        finally:
            for fut in futures:
                fut.cancel()
