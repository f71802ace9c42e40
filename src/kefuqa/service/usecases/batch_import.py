"""A `kefuqa batch` output (Parquet or JSON Lines tables, local or ``s3://``) into the workbench, in bulk and
without scoring again: each call's newest row brings its conversation and its report, stored as they are
when they were scored by the workbench's active rulebook version (the dashboards then show the archive's
scores). Rows scored by another version are refused with a clear reason, unless `rescore` is asked for."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from ...model import Conversation as ConversationModel
from ..ingest import STORE_BATCH, Item, Outcome
from ..records import report_from_dict
from .context import Ctx
from .uploads import UPLOADERS, IngestRun


def is_batch_output(path: str) -> bool:
    """A folder written by `kefuqa batch` (it holds a run manifest), local or in object storage."""
    if "://" in path and not path.startswith("file://"):
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(path)
        return bool(fs.exists(root.rstrip("/") + "/_kefuqa_batch.json"))
    return (Path(path) / "_kefuqa_batch.json").is_file()


def ingest_batch_output(ctx: Ctx, url: str, *, replace: bool = False, rescore: bool = False,
                        on_error: Callable[[str], None] = lambda _: None) -> IngestRun:
    """Store the newest scored row of every call of a batch output; returns what happened to each."""
    from ...distributed.store import iter_table, latest_keys

    ctx.require(UPLOADERS, "只有质检员和管理员可以导入会话")
    active = ctx.wb.rulebooks.active(ctx.db)
    run = IngestRun(files=1)
    newest = latest_keys(url)  # call id -> (run id, scored at) of its newest row
    batch: list[Item] = []

    def store() -> None:
        run.outcomes.extend(ctx.wb.ingestor.ingest(batch, user_id=ctx.user_id, replace=replace).outcomes)
        batch.clear()

    for row in iter_table(url, "calls"):
        cid = row["call_id"]
        if newest.get(cid) != (row["run_id"], str(row["scored_at"])):
            continue  # an older score of this call
        if row["rulebook_version"] != active.version and not rescore:
            why = (f"批量结果由规则集版本 {row['rulebook_version']} 评分，工作台当前启用的是 {active.version}；"
                   f"请先启用该版本，或用当前规则集重新运行 kefuqa batch（或加 --rescore 重新评分）")
            run.outcomes.append(Outcome(cid, "error", error=why, source=row["source"]))
            on_error(f"{row['source']} {cid}: {why}")
            continue
        try:
            data = json.loads(row["conversation_json"])
            conv = ConversationModel.model_validate(data)
        except (ValueError, ValidationError) as exc:
            run.outcomes.append(Outcome(cid, "error", error=f"会话数据无法读取：{exc}", source=row["source"]))
            on_error(f"{row['source']} {cid}: 会话数据无法读取")
            continue
        name = re.sub(r":(第 \d+ 行|line \d+)$", "", str(row["source"]).rsplit("/", 1)[-1])  # file name, no line
        batch.append(Item(conv, name, report=report_from_dict(json.loads(row["report_json"])), data=data,
                          content_hash=row["content_hash"]))
        if len(batch) >= STORE_BATCH:
            store()
    if batch:
        store()
    return run
