"""The workbench's actions, written once for the JSON API, the web pages and the command line.

Each use case takes a `Ctx` (the workbench, a database session, who acts and from where), does one thing
in one transaction (committed at its end, rolled back when it raises), and raises the domain errors of
`kefuqa.service.errors` with Chinese messages. Nothing here imports FastAPI: the adapters (`api.py`,
`web.py`, `cli.py`) turn those errors into status codes, pages or lines on stderr.

- `auth`: bearer/cookie token of a request, login, logout, password change
- `users`: create and change accounts
- `uploads`: upload files or JSON conversations, ingest local files
- `calls`: score a call again, CSV export, a call's recording
- `reviews`: an inspector's verdict, an agent's appeal, the decision on it
- `rulebooks`: upload (lint) and activate rulebook versions
"""

from .context import Ctx

__all__ = ["Ctx"]
