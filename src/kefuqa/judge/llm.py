"""An LLM judge behind an OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, Ollama,
a hosted service), configured in a rulebook's `settings.judges`:

    judges:
      llm: {type: llm, url: http://127.0.0.1:8000/v1, model: qwen2.5-7b-instruct, api_key_env: LLM_KEY,
            timeout: 20, retries: 2, token_budget: 200000}

One prompt per label, built from `labels.yaml` (definition, when it applies, when it does not, examples
both ways); the model answers `{"label": true|false, "confidence": 0..1, "reason": "…", "evidence": "…"}`.
The registry wraps the judge in a `Cascade`, so it is only asked about the fast model's candidates.

Answers are cached by (label, key view of the text): a sentence asked twice costs one request. Every
failure — endpoint unreachable, timeout, HTTP error, malformed answer, token budget spent — is an
`Undecided` whose reason names the endpoint (never its credentials) and the cause; nothing raises.
An endpoint that did not answer is not asked again for `cool_down` seconds, so a batch against a dead
server does not wait out every timeout.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import normalize
from ..rules.schema import JudgeSpec
from . import Judgement, ModelError, Undecided
from .labels import Label, labels

THRESHOLD = 0.5
MAX_TOKENS = 300  # the answer is one short JSON object
CACHE_SIZE = 100_000  # answers kept per judge (oldest dropped first)
ROLE_NAMES = {"agent": "坐席", "customer": "客户"}

_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?</think>", re.S)  # reasoning models think aloud before answering


class _Failure(Exception):
    """Why one request got no answer (Chinese); `status`: the HTTP status, if any; `retry`: worth asking
    again; `down`: the endpoint did not answer at all (connection refused, timeout)."""

    def __init__(self, cause: str, *, status: int | None = None, retry: bool = False, down: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause, self.status, self.retry, self.down, self.retry_after = cause, status, retry, down, retry_after


class LLMJudge:
    """`Judge` over an OpenAI-compatible `/chat/completions` endpoint. Thread-safe; one per checker (the
    token budget is per judge object, so per process under `--jobs`)."""

    backoff = 0.25  # seconds before the first retry, doubled each time
    max_backoff = 8.0
    cool_down = 30.0  # seconds an endpoint that did not answer is not asked again

    def __init__(self, spec: JudgeSpec, name: str = "llm") -> None:
        if not spec.url:
            raise ModelError(f"判断器 {name}：LLM 判断需要 url（OpenAI 兼容接口地址，如 http://127.0.0.1:8000/v1）")
        if not spec.model:
            raise ModelError(f"判断器 {name}：LLM 判断需要 model（接口提供的模型名）")
        try:
            import httpx
        except ImportError:
            raise ModelError("LLM 判断需要 httpx：pip install httpx（或 pip install 'kefuqa[server]'）") from None
        self._httpx = httpx
        self.spec, self.config_name = spec, name
        parts = urlsplit(spec.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelError(f"判断器 {name}：url 应为 http(s)://主机[:端口]/路径（得到 {_public_url(spec.url)}）")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            host += f":{parts.port}"
        path = parts.path.rstrip("/")
        if not path.endswith("/chat/completions"):
            path += "/chat/completions"
        # credentials in the URL (user:password@) go to the server as basic auth (when no API key is set),
        # never into names or messages
        self._post_url = urlunsplit((parts.scheme, host, path, parts.query, ""))
        self._basic = (parts.username or "", parts.password or "") if parts.username or parts.password else None
        self._secrets = [parts.password] if parts.password else []
        self.endpoint = urlunsplit((parts.scheme, host, parts.path.rstrip("/") or "/", "", ""))
        self.name = f"llm:{spec.model}@{host}"
        self._loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0
        self._cache: dict[tuple[str, str], Judgement] = {}
        self._prompts: dict[str, str] = {}
        self._json_mode = True  # send response_format until the server refuses it
        self._down_until = 0.0
        self._down_cause = ""
        self.tokens_used = 0
        self.requests = 0  # HTTP requests sent (retries included)
        self.cache_hits = 0

    # ---- the Judge protocol -------------------------------------------------------------------------

    def judge_many(self, texts: list[str], label: str) -> list[Judgement | Undecided]:
        lab = labels().get(label)
        if lab is None:
            return [Undecided(f"LLM 判断器 {self.name} 不认识标签 {label}", self.name) for _ in texts]
        batch: dict[str, Judgement | Undecided] = {}  # a failure is not asked twice in one batch either
        out: list[Judgement | Undecided] = []
        for text in texts:
            k = normalize.key(text)
            got = batch.get(k)
            if got is None:
                got = batch[k] = self._judge_one(text, k, lab)
            out.append(got)
        return out

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # ---- one utterance ------------------------------------------------------------------------------

    def _judge_one(self, text: str, key: str, lab: Label) -> Judgement | Undecided:
        ck = (lab.key, key)
        with self._lock:
            got = self._cache.get(ck)
            if got is not None:
                self.cache_hits += 1
                return got
            budget = self.spec.token_budget
            if budget is not None and self.tokens_used >= budget:
                return Undecided(f"LLM 额度已用完（{self.endpoint}：已用 {self.tokens_used} tokens，预算 {budget}），"
                                 "其余话语未判断", self.name)
            wait = self._down_until - time.monotonic()
            if wait > 0:
                return Undecided(self._failed(f"{self._down_cause}；{math.ceil(wait)} 秒内不再调用"), self.name)
        system, user = self._prompt(lab), _question(text, lab)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            content, tokens = self._complete(messages)
        except _Failure as f:
            return Undecided(self._failed(f.cause), self.name)
        with self._lock:
            self.tokens_used += tokens if tokens is not None else _estimate(system, user, content)
        try:
            answer = parse_answer(content)
        except ValueError as exc:
            return Undecided(self._failed(f"应答格式不对（{exc}）：{_excerpt(content)}"), self.name)
        verdict, confidence, reason, evidence = answer
        score = confidence if verdict else 1.0 - confidence
        span = None
        if evidence:
            ev = normalize.key(evidence)
            at = key.find(ev) if ev else -1
            if at >= 0:
                span = (at, at + len(ev))
        j = Judgement(lab.key, score, THRESHOLD, span, self.name, reason)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[ck] = j
        return j

    def _failed(self, cause: str) -> str:
        return self._scrub(f"LLM 判断失败（{self.endpoint}）：{cause}")

    def _scrub(self, s: str) -> str:
        for secret in [*self._secrets, self._api_key() or ""]:
            if secret:
                s = s.replace(secret, "***")
        return s

    def _api_key(self) -> str | None:
        env = self.spec.api_key_env
        return (os.environ.get(env) or None) if env else None

    # ---- the prompt -----------------------------------------------------------------------------------

    def _prompt(self, lab: Label) -> str:
        got = self._prompts.get(lab.key)
        if got is None:
            got = self._prompts[lab.key] = build_prompt(lab)
        return got

    # ---- HTTP -------------------------------------------------------------------------------------------

    def _http(self) -> Any:
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():  # not shared across a fork
                self._client = self._httpx.Client(timeout=self._httpx.Timeout(self.spec.timeout),
                                                  trust_env=not self._loopback)
                self._client_pid = os.getpid()
            return self._client

    def _complete(self, messages: list[dict[str, str]]) -> tuple[str, int | None]:
        """The answer's text and the tokens the server says it used (None when it does not say)."""
        httpx = self._httpx
        env = self.spec.api_key_env
        key = self._api_key()
        if env and key is None:
            raise _Failure(f"环境变量 {env} 未设置（api_key_env），无法调用")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        auth = httpx.BasicAuth(*self._basic) if self._basic and not key else None
        body: dict[str, Any] = {"model": self.spec.model, "messages": messages, "temperature": 0,
                                "max_tokens": MAX_TOKENS}
        json_mode = self._json_mode
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        client = self._http()
        attempt = 0
        while True:
            with self._lock:
                self.requests += 1
            try:
                got = self._answer(client.post(self._post_url, json=body, headers=headers, auth=auth))
            except httpx.TimeoutException:
                got = _Failure(f"{self.spec.timeout:g} 秒内无应答（超时）", retry=True, down=True)
            except httpx.TransportError as exc:
                got = _Failure(f"无法连接（{_short(exc)}）", retry=True, down=True)
            if not isinstance(got, _Failure):
                if not json_mode and self._json_mode:
                    self._json_mode = False  # the request without response_format worked: remember
                return got
            if json_mode and got.status in (400, 422):
                # some servers do not take response_format: ask once more without it (not a retry)
                json_mode = False
                body.pop("response_format", None)
                continue
            if not got.retry or attempt >= self.spec.retries:
                cause = got.cause + (f"（已重试 {attempt} 次）" if attempt else "")
                if got.down:
                    with self._lock:
                        self._down_until = time.monotonic() + self.cool_down
                        self._down_cause = "上次调用失败：" + cause
                raise _Failure(cause)
            delay = min(self.max_backoff, self.backoff * 2 ** attempt)
            if got.retry_after is not None:
                delay = min(self.max_backoff, max(delay, got.retry_after))
            time.sleep(delay)
            attempt += 1

    @staticmethod
    def _answer(resp: Any) -> tuple[str, int | None] | _Failure:
        """The answer's text and reported tokens, or why the response is not one."""
        code = resp.status_code
        if 200 <= code < 300:
            try:
                data = resp.json()
                content = data["choices"][0]["message"]["content"]
            except ValueError:
                return _Failure(f"应答不是 JSON：{_excerpt(resp.text)}")
            except (KeyError, IndexError, TypeError):
                return _Failure(f"应答缺少 choices[0].message.content：{_excerpt(resp.text)}")
            if not isinstance(content, str):
                return _Failure(f"应答的 message.content 不是文字：{_excerpt(resp.text)}")
            usage = data.get("usage")
            total = usage.get("total_tokens") if isinstance(usage, dict) else None
            tokens = int(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else None
            return content, tokens
        retry = code == 429 or code >= 500
        return _Failure(f"HTTP {code}{_error_detail(resp)}", status=code, retry=retry,
                        retry_after=_retry_after(resp) if retry else None)


# ---- prompt and answer --------------------------------------------------------------------------------


def build_prompt(lab: Label) -> str:
    """The system prompt for one label: the QA context, the label's definition, when it applies and when
    it does not, and examples both ways."""
    who = ROLE_NAMES.get(lab.role, lab.role)
    lines = [
        "你是呼叫中心客服质检员，逐句判断客服通话中的话语。话语来自语音识别转写，可能没有标点、有同音错字、"
        "用 _ 表示停顿，也可能是繁体字；按说话人的本意判断，不要只看字面关键词。",
        "",
        f"要判断的标签：{lab.name}（{lab.key}），只判断{who}说的话。",
        f"定义：{lab.definition}",
        f"判为 true（属于该标签）：{lab.fail_when}",
        f"判为 false（不属于该标签）：{lab.pass_when}",
    ]
    if lab.positives:
        lines += ["", "属于该标签的例子（true）：", *(f"- {p}" for p in lab.positives)]
    if lab.negatives:
        lines += ["", "不属于该标签的例子（false）：", *(f"- {n}" for n in lab.negatives)]
    lines += [
        "",
        "只看给出的这一句话，不要猜测没有说出的上下文。只输出一个 JSON 对象，不要输出任何其他文字：",
        '{"label": true 或 false, "confidence": 0 到 1 之间的数（你对这个判断有多大把握）, '
        '"reason": "一句话理由", "evidence": "原话中起决定作用的词语，原样摘抄；label 为 false 时填空字符串"}',
    ]
    return "\n".join(lines)


def _question(text: str, lab: Label) -> str:
    who = ROLE_NAMES.get(lab.role, lab.role)
    # the utterance as a JSON string: whatever it says stays data, not instructions
    return f"{who}说：{json.dumps(text, ensure_ascii=False)}\n这句话属于「{lab.name}」吗？只输出 JSON。"


def parse_answer(content: str) -> tuple[bool, float, str | None, str | None]:
    """(label, confidence clamped to 0–1, reason, evidence) from the model's answer: the first JSON
    object in it (code fences and <think> blocks tolerated). Raises ValueError saying what is wrong."""
    s = _THINK.sub("", content).strip()
    fence = _FENCE.search(s)
    if fence:
        s = fence.group(1)
    obj: dict[str, Any] | None = None
    decoder = json.JSONDecoder()
    at = s.find("{")
    while at >= 0:
        try:
            got, _ = decoder.raw_decode(s, at)
        except ValueError:
            got = None
        if isinstance(got, dict):
            obj = got
            break
        at = s.find("{", at + 1)
    if obj is None:
        raise ValueError("没有 JSON 对象")
    if "label" not in obj:
        raise ValueError("缺少 label")
    verdict = obj["label"]
    if isinstance(verdict, str) and verdict.strip().lower() in ("true", "false"):
        verdict = verdict.strip().lower() == "true"
    if not isinstance(verdict, bool):
        raise ValueError(f"label 应为 true 或 false，得到 {verdict!r}")
    if "confidence" not in obj:
        raise ValueError("缺少 confidence")
    conf = obj["confidence"]
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf):
        raise ValueError(f"confidence 应为 0 到 1 的数，得到 {conf!r}")
    return verdict, min(1.0, max(0.0, float(conf))), _text_field(obj, "reason"), _text_field(obj, "evidence")


def _text_field(obj: dict[str, Any], name: str) -> str | None:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"{name} 应为文字，得到 {v!r}")
    v = " ".join(v.split())
    return v[:200] or None


# ---- small helpers ----------------------------------------------------------------------------------


def _estimate(*texts: str) -> int:
    """Tokens when the server does not report usage: about one a CJK character, one per four others."""
    n = sum(len(t) for t in texts)
    ascii_ = sum(1 for t in texts for ch in t if ch < "\x80")
    return (n - ascii_) + math.ceil(ascii_ / 4)


def _excerpt(s: str, n: int = 80) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) <= n else s[:n] + "…")


def _short(exc: Exception) -> str:
    s = str(exc).strip() or type(exc).__name__
    return s if len(s) <= 120 else s[:120] + "…"


def _error_detail(resp: Any) -> str:
    """The server's own error message, short (OpenAI style {"error": {"message": …}} or plain text)."""
    try:
        data = resp.json()
    except ValueError:
        text = resp.text.strip()
        return f"：{_excerpt(text)}" if text else ""
    msg: Any = data.get("error") if isinstance(data, dict) else None
    if isinstance(msg, dict):
        msg = msg.get("message")
    if msg is None and isinstance(data, dict):
        msg = data.get("detail") or data.get("message")
    return f"：{_excerpt(str(msg))}" if msg else ""


def _retry_after(resp: Any) -> float | None:
    v = resp.headers.get("retry-after")
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _public_url(url: str) -> str:
    """A URL as it may be shown: no user, password, query or fragment."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if p.port is not None:
            host += f":{p.port}"
        return urlunsplit((p.scheme, host, p.path, "", ""))
    except ValueError:
        return "<url>"
