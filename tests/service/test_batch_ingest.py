"""`kefuqa ingest DST` of a `kefuqa batch` output: the archive's scores stored in bulk, without scoring again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

pytest.importorskip("pyarrow")

import kefuqa  # noqa: E402
from kefuqa.distributed import read_table, run_batch  # noqa: E402
from kefuqa.service import cli  # noqa: E402
from kefuqa.service.db import make_engine  # noqa: E402
from kefuqa.service.models import Conversation, Finding, Score  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_batch_output_is_stored_as_scored(any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    run_batch([str(EXAMPLES)], str(out), kefuqa.load_rulebook(), part_calls=10)
    rows = {r["call_id"]: r for r in read_table(str(out), "calls")}

    def no_scoring(*_a: object, **_k: object) -> None:
        raise AssertionError("a batch output must not be scored again")

    monkeypatch.setattr(kefuqa.Checker, "check", no_scoring)
    lines: list[str] = []
    errors: list[str] = []
    assert cli.ingest([str(out)], any_db, data_dir=str(tmp_path), echo=lines.append, err=errors.append) == 0, errors
    assert f"已存储 {len(rows)} 通" in lines[-1]
    engine = make_engine(any_db)
    with engine.connect() as conn:
        stored = {cid: (score, report) for cid, score, report in conn.execute(
            select(Conversation.call_id, Score.score, Score.report).join(Score, Score.id == Conversation.current_score_id))}
        findings = conn.execute(select(func.count()).select_from(Finding)).scalar()
    engine.dispose()
    assert set(stored) == set(rows)
    for cid, (score, report) in stored.items():
        assert score == rows[cid]["score"]
        scored = json.loads(rows[cid]["report_json"])
        for key in ("call_id", "rulebook", "score", "grade", "fatal", "dimensions", "findings", "events",
                    "not_applicable"):  # DESIGN §3
            assert report[key] == scored[key], key
    assert findings == sum(len(r["findings"]) + len(r["events"]) for r in map(json.loads, (
        x["report_json"] for x in rows.values())))
    # again: nothing changes
    assert cli.ingest([str(out)], any_db, data_dir=str(tmp_path), echo=lines.append, err=errors.append) == 0
    assert f"未变化 {len(rows)}" in lines[-1]


def test_another_rulebook_version_is_refused_with_the_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    out = tmp_path / "out"
    run_batch([str(EXAMPLES / "telecom-inbound-exemplary.json")], str(out), kefuqa.load_rulebook("utility-95598"))
    lines: list[str] = []
    errors: list[str] = []
    assert cli.ingest([str(out)], url, data_dir=str(tmp_path), echo=lines.append, err=errors.append) == 2
    assert any("工作台当前启用的是" in e and "kefuqa batch" in e for e in errors), errors


def test_rescore_flag_scores_another_versions_rows_with_the_active_rulebook(any_db: str, tmp_path: Path) -> None:
    """`kefuqa ingest DST --rescore` (the command line): rows scored by another rulebook version are scored
    again by the workbench's active rulebook instead of being refused."""
    from typer.testing import CliRunner

    from kefuqa.cli import app

    out = tmp_path / "out"
    src = EXAMPLES / "telecom-inbound-exemplary.json"
    run_batch([str(src)], str(out), kefuqa.load_rulebook("utility-95598"))
    (row,) = read_table(str(out), "calls")
    args = ["ingest", str(out), "--database-url", any_db, "--data-dir", str(tmp_path)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "工作台当前启用的是" in refused.output
    done = CliRunner().invoke(app, [*args, "--rescore"])
    assert done.exit_code == 0, done.output
    assert "已存储 1 通" in done.output
    engine = make_engine(any_db)
    with engine.connect() as conn:
        (report,) = conn.execute(select(Score.report).join(Conversation, Score.id == Conversation.current_score_id))
    engine.dispose()
    # scored by the active (bundled default) rulebook, as `kefuqa check` scores the same call
    active = kefuqa.load_rulebook()
    assert report[0]["rulebook"]["version"] == active.version != row["rulebook_version"]
    from kefuqa.readers import read_path

    (conv,) = read_path(src)
    assert report[0]["score"] == kefuqa.Checker(active).check(conv).score
