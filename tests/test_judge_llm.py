"""The LLM judge end to end, against a real OpenAI-compatible HTTP server on loopback started here
(`http.server`), whose answers are scripted per request."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import conv, fired

import kefuqa
from kefuqa.judge import Judgement, Undecided
from kefuqa.judge.labels import labels
from kefuqa.judge.llm import LLMJudge, build_prompt, parse_answer
from kefuqa.judge.ngram import FORMAT
from kefuqa.rules.schema import JudgeSpec

pytest.importorskip("httpx")

KEY = "sk-test-9f8e7d6c5b4a"  # the API key the server expects


class FakeLLM:
    """What the server answers. By default it decides by keywords in the user message (压扁/下午三点 →
    complaint; 不归我们/问厂家 → blame shift); `queue` holds scripted answers used first, one per request:
    (status, body) with body a dict (sent as JSON) or str (sent raw), or ("sleep", seconds)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.queue: list[tuple[Any, Any]] = []
        self.usage: int | None = 100  # total_tokens reported (None: no usage field)
        self.lock = threading.Lock()

    def decide(self, user: str) -> dict[str, Any]:
        rules = [("压扁了", "箱子都压扁了", "客户抱怨快递把箱子压坏"), ("下午三点", "这都下午三点了", "客户抱怨上门爽约"),
                 ("不归我们", "这事不归我们", "坐席把问题推给物业"), ("问厂家", "您得问厂家", "坐席让客户自己找厂家"),
                 ("证据不在原话里", "完全不同的词", "证据摘抄不出")]
        for word, evidence, reason in rules:
            if word in user:
                return {"label": True, "confidence": 0.92, "reason": reason, "evidence": evidence}
        return {"label": False, "confidence": 0.8, "reason": "中性的话", "evidence": ""}

    def respond(self, body: dict[str, Any], scripted_ok: bool = True) -> tuple[Any, Any]:
        with self.lock:
            scripted = self.queue.pop(0) if self.queue and scripted_ok else None
        if scripted is not None:
            return scripted
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        answer: dict[str, Any] = {"id": "x", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                      "role": "assistant", "content": json.dumps(self.decide(user),
                                                                                 ensure_ascii=False)}}]}
        if self.usage is not None:
            answer["usage"] = {"prompt_tokens": self.usage - 20, "completion_tokens": 20,
                               "total_tokens": self.usage}
        return 200, answer

    def users(self) -> list[str]:
        return [next(m["content"] for m in r["body"]["messages"] if m["role"] == "user") for r in self.requests]


def _content(text: str) -> dict[str, Any]:
    """A 200 answer whose message content is `text`."""
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        fake: FakeLLM = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with fake.lock:
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, payload = fake.respond(body)
        if status == "sleep":
            time.sleep(payload)
            status, payload = fake.respond(body, scripted_ok=False)
        raw = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def llm() -> Iterator[tuple[FakeLLM, str]]:
    """(the scripted fake, its base URL http://127.0.0.1:PORT/v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    fake = FakeLLM()
    server.fake = fake  # type: ignore[attr-defined]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fast_model(tmp_path: Path) -> Path:
    """A tiny fast model: every utterance is a candidate (score 0.5) except those saying 好的 (≈0)."""
    names = list(labels())
    data = {"format": FORMAT, "version": "test", "labels": names, "bias": [0.0] * len(names),
            "thresholds": [0.5] * len(names), "weights": {"c好的": [[i, -20.0] for i in range(len(names))]}}
    p = tmp_path / "intent-test.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


def _judge(url: str, **kw: Any) -> LLMJudge:
    j = LLMJudge(JudgeSpec(type="llm", url=url, model="qwen-test", **{"timeout": 0.5, "retries": 1, **kw}), "llm")
    j.backoff = 0.01
    return j


RULES = """
- {id: BLM01, name: 推诿责任, kind: intent, label: blame_shift, role: agent, judge: llm, points: 10,
   dimension: 礼貌, message: "推诿责任（{confidence}）：{reason}"}
- {id: EVT01, name: 客户投诉, kind: intent, label: complaint, role: customer, judge: llm, severity: event,
   message: 客户投诉}
- {id: LNG01, name: 服务禁语, kind: phrase, phrases: [你听不懂吗], points: 5, dimension: 效率, message: "禁语 {evidence}"}
"""


def _rulebook(rulebook: Callable[..., kefuqa.Rulebook], fast_model: Path, url: str, **llm: Any) -> kefuqa.Rulebook:
    spec = {"type": "llm", "url": url, "model": "qwen-test", "timeout": 0.5, "retries": 1, **llm}
    extra = f"settings:\n  judges:\n    fast: {{type: ngram, path: '{fast_model}'}}\n    llm: {json.dumps(spec)}\n"
    return rulebook(RULES, extra)


CALL = ("C: 你们这快递怎么送的，箱子都压扁了", "A: 这事不归我们，你去找物业吧", "C: 好的", "A: 你听不懂吗")


def test_findings_through_check_carry_confidence_judge_and_reason(rulebook, fast_model, llm, monkeypatch):
    fake, url = llm
    monkeypatch.setenv("KEFUQA_TEST_LLM_KEY", KEY)
    rb = _rulebook(rulebook, fast_model, url, api_key_env="KEFUQA_TEST_LLM_KEY")
    report = kefuqa.check(conv(*CALL), rb)
    port = url.split(":")[2].split("/")[0]
    name = f"llm:qwen-test@127.0.0.1:{port}"
    (f,) = fired(report, "BLM01")
    assert f.utterance == 1 and f.confidence == 0.92 and f.judge == name and f.match == "model"
    assert f.message == "推诿责任（0.92）：坐席把问题推给物业"
    assert f.evidence == "这事不归我们" and f.span == (0, 6)  # the model's evidence, in the original text
    (e,) = fired(report, "EVT01")
    assert e.utterance == 0 and e.judge == name and e.evidence == "箱子都压扁了"
    assert fired(report, "LNG01")
    assert report.to_dict()["findings"][0]["judge"] == name
    # only the fast model's candidates were asked (not 好的), each once, with the prompt for its label
    users = fake.users()
    assert len(users) == 3 and not any("好的" in u for u in users)
    sent = fake.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "qwen-test" and sent["body"]["response_format"] == {"type": "json_object"}
    systems = {r["body"]["messages"][0]["content"] for r in fake.requests}
    assert build_prompt(labels()["blame_shift"]) in systems and build_prompt(labels()["complaint"]) in systems
    # (8) the key goes to the server as a bearer token, and nowhere else
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in fake.requests)
    assert KEY not in json.dumps(report.to_dict(), ensure_ascii=False) and KEY not in name


def test_prompt_has_definition_criteria_and_examples():
    lab = labels()["complaint"]
    p = build_prompt(lab)
    for part in (lab.definition, lab.fail_when, lab.pass_when, *lab.positives, *lab.negatives, '"confidence"',
                 "客服质检"):
        assert part in p


def test_the_same_sentence_is_asked_once(llm):
    fake, url = llm
    j = _judge(url)
    first = j.judge_many(["箱子都压扁了", "箱子都壓扁了！", "我想查一下快递"], "complaint")
    assert len(fake.requests) == 2  # Traditional + punctuation: the same key view, one request
    assert [x.score for x in first if isinstance(x, Judgement)] == [0.92, 0.92, pytest.approx(0.2)]
    again = j.judge_many(["箱子都压扁了"], "complaint")
    assert again[0] == first[0] and len(fake.requests) == 2 and j.cache_hits == 1
    # another label is another question
    j.judge_many(["箱子都压扁了"], "anger")
    assert len(fake.requests) == 3


def test_retries_after_a_500(llm):
    fake, url = llm
    fake.queue = [(500, {"error": {"message": "overloaded"}}), (429, "slow down")]
    (got,) = _judge(url, retries=2).judge_many(["说好上午来修，这都下午三点了"], "complaint")
    assert isinstance(got, Judgement) and got.score == 0.92 and got.reason == "客户抱怨上门爽约"
    assert len(fake.requests) == 3
    # retries exhausted: undecided, with the status and the server's message
    fake.queue = [(503, {"error": {"message": "overloaded"}})] * 2
    (got,) = _judge(url, retries=1).judge_many(["说好上午来修，这都下午三点了"], "complaint")
    assert isinstance(got, Undecided) and "HTTP 503" in got.reason and "overloaded" in got.reason
    assert "已重试 1 次" in got.reason and url in got.reason


def test_no_retry_on_a_4xx(llm):
    fake, url = llm
    fake.queue = [(401, {"error": {"message": "invalid api key"}})]
    (got,) = _judge(url, retries=3).judge_many(["箱子都压扁了"], "complaint")
    assert isinstance(got, Undecided) and "HTTP 401" in got.reason and len(fake.requests) == 1


def test_a_server_refusing_response_format_is_asked_without_it(llm):
    fake, url = llm
    fake.queue = [(400, {"error": {"message": "response_format not supported"}})]
    j = _judge(url)
    (got,) = j.judge_many(["箱子都压扁了"], "complaint")
    assert isinstance(got, Judgement) and len(fake.requests) == 2
    assert "response_format" in fake.requests[0]["body"] and "response_format" not in fake.requests[1]["body"]
    j.judge_many(["这都下午三点了"], "complaint")
    assert "response_format" not in fake.requests[2]["body"]  # remembered


@pytest.mark.slow
def test_timeout_makes_the_rule_undecided_and_the_rest_is_scored(rulebook, fast_model, llm):
    fake, url = llm
    fake.queue = [("sleep", 1.5)] * 10
    rb = _rulebook(rulebook, fast_model, url, timeout=0.3, retries=1)
    report = kefuqa.check(conv(*CALL), rb)
    # the first utterance timed out twice (the server answers only after 1.5 s: an answer would be a
    # judgement, not 超时 below); the endpoint is then not asked again for a while
    assert len(fake.requests) == 2
    for rule in ("BLM01", "EVT01"):
        reason = report.not_applicable[rule]
        assert reason.startswith("判断未完成：") and url in reason and "超时" in reason, reason
    assert not fired(report, "BLM01") and not fired(report, "EVT01")
    (f,) = fired(report, "LNG01")  # the rest of the report is still scored
    assert f.points == -5 and report.dimensions["效率"] == 35


@pytest.mark.parametrize("content", [
    "我觉得这是投诉",  # no JSON at all
    '{"label": true, "confidence": 0.9',  # cut off
    '{"confidence": 0.9, "reason": "x"}',  # no label
    '{"label": "maybe", "confidence": 0.9}',
    '{"label": true, "confidence": "high"}',
    '{"label": true}',
])
def test_a_malformed_answer_is_undecided(llm, content):
    fake, url = llm
    fake.queue = [(200, _content(content))]
    (got,) = _judge(url).judge_many(["箱子都压扁了"], "complaint")
    assert isinstance(got, Undecided) and "应答格式不对" in got.reason and url in got.reason
    assert len(fake.requests) == 1  # not retried, not cached: asked again next time
    fake.queue = [(200, "<html>not json</html>")]
    (got,) = _judge(url).judge_many(["箱子都压扁了"], "complaint")
    assert isinstance(got, Undecided) and "应答不是 JSON" in got.reason


def test_answers_in_code_fences_or_after_thinking_are_read():
    assert parse_answer('```json\n{"label": false, "confidence": 0.7, "reason": "中性"}\n```') == \
        (False, 0.7, "中性", None)
    assert parse_answer('<think>{也许}</think>好的：{"label": "true", "confidence": 1.4, "evidence": "压扁"}') == \
        (True, 1.0, None, "压扁")


def test_unreachable_endpoint_is_undecided_without_an_exception(rulebook, fast_model):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    j = _judge(url)
    got = j.judge_many(["箱子都压扁了", "这都下午三点了"], "complaint")
    assert all(isinstance(x, Undecided) for x in got)
    assert "无法连接" in got[0].reason and url in got[0].reason and j.requests == 2  # one retry, then resting
    report = kefuqa.check(conv(*CALL), _rulebook(rulebook, fast_model, url))
    assert report.not_applicable["EVT01"].startswith("判断未完成：LLM 判断失败（" + url)
    assert fired(report, "LNG01")


def test_token_budget(llm):
    fake, url = llm
    fake.usage = 150
    j = _judge(url, token_budget=300)
    got = j.judge_many(["箱子都压扁了", "这都下午三点了", "这事不归我们", "箱子都压扁了"], "complaint")
    assert [type(x).__name__ for x in got] == ["Judgement", "Judgement", "Undecided", "Judgement"]
    assert got[2].reason.startswith("LLM 额度已用完") and "300" in got[2].reason
    assert len(fake.requests) == 2 and j.tokens_used == 300
    # a server that reports no usage is counted by an estimate of the prompt and the answer
    fake.usage = None
    j = _judge(url, token_budget=10)
    got = j.judge_many(["箱子都压扁了", "这都下午三点了"], "complaint")
    assert isinstance(got[0], Judgement) and isinstance(got[1], Undecided) and j.tokens_used > 100


def test_api_key_never_in_names_or_messages(llm, monkeypatch):
    fake, url = llm
    monkeypatch.setenv("KEFUQA_TEST_LLM_KEY", KEY)
    host = url.split("//")[1]
    j = _judge(url.replace("//", "//user:pw-secret@"), api_key_env="KEFUQA_TEST_LLM_KEY")
    assert j.name == f"llm:qwen-test@{host.split('/')[0]}" and "pw-secret" not in j.endpoint
    fake.queue = [(401, {"error": {"message": f"bad key {KEY}"}})]  # a server that echoes the key back
    (got,) = j.judge_many(["箱子都压扁了"], "complaint")
    assert isinstance(got, Undecided) and KEY not in got.reason and "pw-secret" not in got.reason
    assert fake.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    # a configured key whose variable is unset: undecided, naming the variable, nothing sent
    monkeypatch.delenv("KEFUQA_TEST_LLM_KEY")
    (got,) = _judge(url, api_key_env="KEFUQA_TEST_LLM_KEY").judge_many(["这都下午三点了"], "complaint")
    assert isinstance(got, Undecided) and "KEFUQA_TEST_LLM_KEY" in got.reason and len(fake.requests) == 1


def test_evidence_not_in_the_utterance_has_no_span(llm):
    fake, url = llm
    (got,) = _judge(url).judge_many(["这个证据不在原话里哦"], "complaint")
    assert isinstance(got, Judgement) and got.span is None and got.score == 0.92
    (got,) = _judge(url).judge_many(["箱子，都压扁了！"], "complaint")
    assert isinstance(got, Judgement) and got.span == (0, 6)  # key-view offsets (箱子都压扁了)


def test_reason_survives_the_cascade_when_the_evidence_is_not_quoted(rulebook, fast_model, llm):
    fake, url = llm
    report = kefuqa.check(conv("A: 这个证据不在原话里哦"), _rulebook(rulebook, fast_model, url))
    (f,) = fired(report, "BLM01")
    assert f.message.endswith("证据摘抄不出")
