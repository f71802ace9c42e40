"""`python -m kefuqa.service ingest|serve|user add`."""

from .cli import app

app(prog_name="python -m kefuqa.service")
