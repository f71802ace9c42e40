"""The QA workbench: storage (SQLAlchemy + Alembic), HTTP API (FastAPI) and web UI, on the same core.

Entry points: `kefuqa.service.cli` (`ingest`, `serve`, `add_user`) and `kefuqa.service.app.create_app`.

Layers, top to bottom (imports point down; `api` and `web` never import each other):

- adapters: `api` (JSON under /api), `web` (pages), `cli` (commands), wired by `app`; `deps` is their
  shared request plumbing (sessions, who is asking, CSRF, domain error → HTTP status)
- `usecases`: the actions (auth, users, uploads, calls, reviews, rulebooks), raising `errors` (domain
  errors with Chinese messages); no FastAPI
- `workbench` wires the parts: `rulebooks` (stored versions, loaded and compiled once, uploads linted and
  loaded from their text), `ingest` (files → conversations → scored and stored in bulk), `audio_store`,
  `scores` (re-scoring and the effective score through `kefuqa.scoring.rescore`), `records` (rows ↔ core)
- storage: `models`, `db` (+ `migrations`), `repository` (role-scoped queries, audit), `security`, `views`

Needs the ``server`` extra: ``pip install 'kefuqa[server]'``.
"""
