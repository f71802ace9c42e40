"""What the daily rollup's triggers (migration 0009) cost a write: uploads of calls through the API and reviews,
with the triggers on and off, alternating rounds in the same run, on PostgreSQL (a fresh schema) and SQLite.

    python bench/bench_rollup_writes.py [--rounds 6] [--batch 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

PG_URL = os.environ.get("KEFUQA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TRIGGERS = {"conversations": ["conversations_stats_ai", "conversations_stats_au", "conversations_stats_bd"],
            "findings": ["findings_stats_aid", "findings_stats_au"]}
SQLITE_TRIGGERS = ["conversations_stats_ai", "conversations_stats_au", "conversations_stats_bd", "findings_stats_ai",
                   "findings_stats_au", "findings_stats_ad"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))
    import svc_samples as samples
    from fastapi.testclient import TestClient

    from kefuqa.service.app import create_app
    from kefuqa.service.config import Settings
    from kefuqa.service.workbench import Workbench

    schema = f"kefuqa_bench_writes_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    folder = Path(tempfile.mkdtemp(prefix="kefuqa-bench-"))
    urls = {"PostgreSQL": f"{PG_URL}{sep}options=-csearch_path%3D{schema}", "SQLite": f"sqlite:///{folder / 'w.db'}"}
    try:
        for name, url in urls.items():
            settings = Settings(database_url=url, data_dir=folder / name, admin_password="Bench-admin-1")
            wb = Workbench(settings)
            wb.setup()
            client = TestClient(create_app(settings, wb))
            token = client.post("/api/auth/login", json={"username": "admin", "password": "Bench-admin-1"}).json()["token"]
            h = {"Authorization": f"Bearer {token}"}

            def triggers(on: bool, wb: Any = wb, name: str = name) -> None:
                with wb.engine.begin() as conn:
                    if name == "PostgreSQL":
                        for table, names in TRIGGERS.items():
                            for t in names:
                                conn.execute(text(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'} TRIGGER {t}"))
                    elif not on:
                        for t in SQLITE_TRIGGERS:
                            conn.execute(text(f"DROP TRIGGER IF EXISTS {t}"))
                    else:  # SQLite cannot disable a trigger: they are dropped and created again from the migration
                        mig = __import__("importlib").import_module(
                            "kefuqa.service.migrations.versions.0009_stats_rollup")
                        for stmt in mig._sqlite_up():
                            conn.execute(text(stmt.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS")))

            upload: dict[bool, list[float]] = {True: [], False: []}
            review: dict[bool, list[float]] = {True: [], False: []}
            kinds = ["refuse", "fatal", "complaint", "noclose", "good"]
            for r in range(args.rounds * 2):
                on = r % 2 == 0
                triggers(on)
                calls = [samples.conversation(f"w-{uuid.uuid4().hex[:8]}", ("A1", "A2", "B1")[i % 3], 5 + i % 10,
                                              kinds[i % 5]) for i in range(args.batch)]
                t0 = time.perf_counter()
                resp: Any = client.post("/api/conversations", json=calls, headers=h)
                upload[on].append((time.perf_counter() - t0) * 1000 / args.batch)
                assert resp.status_code == 200, resp.text
                ids = [x["id"] for x in resp.json()["results"]][:5]
                fids = [f["id"] for i in ids for f in client.get(f"/api/calls/{i}", headers=h).json()["findings"]][:5]
                t0 = time.perf_counter()
                for f in fids:
                    client.post(f"/api/findings/{f}/review", json={"verdict": "reject", "reason": "测"}, headers=h)
                review[on].append((time.perf_counter() - t0) * 1000 / max(1, len(fids)))
            triggers(True)
            for what, d in (("upload, per call", upload), ("review, per finding", review)):
                a, b = statistics.median(d[True]), statistics.median(d[False])
                print(f"{name:<11} {what:<20} triggers on {a:6.1f} ms  off {b:6.1f} ms  ratio {a / b:.2f}")
            client.close()
            wb.engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
