"""The QA workbench: storage (SQLAlchemy + Alembic), HTTP API (FastAPI) and web UI, on the same core.

Entry points: `kefuqa.service.cli` (`ingest`, `serve`, `add_user`) and `kefuqa.service.app.create_app`.
Needs the ``server`` extra: ``pip install 'kefuqa[server]'``.
"""
