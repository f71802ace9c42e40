"""Where a deployment keeps its fast judgement model.

The package ships one (`ngram.DEFAULT_MODEL`). A deployment that retrains on its inspectors' verdicts
(`kefuqa model train --reviews …`) keeps its own in a folder named by the environment variable
`KEFUQA_MODEL_DIR`, as `intent-ngram.json.gz`; trained candidates go to its `candidates/` folder.

Which model the fast judge loads, first that applies:

1. the rulebook's `settings.judges.fast.path` (a rulebook pinned to one model file);
2. `$KEFUQA_MODEL_DIR/intent-ngram.json.gz`, when that file exists;
3. the model bundled with the package.

`kefuqa model train` writes to `--model` when given, else to the deployment's file when
`KEFUQA_MODEL_DIR` is set, else to the bundled file (a source checkout training the shipped model).
"""

from __future__ import annotations

import os
from pathlib import Path

from .ngram import DEFAULT_MODEL

MODEL_DIR_ENV = "KEFUQA_MODEL_DIR"
MODEL_FILE = "intent-ngram.json.gz"


def model_dir() -> Path | None:
    raw = os.environ.get(MODEL_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else None


def target_model_path() -> Path:
    """The file `kefuqa model train` activates a model in (when no --model is given)."""
    d = model_dir()
    return d / MODEL_FILE if d is not None else DEFAULT_MODEL


def deployed_model_path() -> Path:
    """The model file the fast judge loads when the rulebook names none."""
    d = model_dir()
    if d is not None and (d / MODEL_FILE).is_file():
        return d / MODEL_FILE
    return DEFAULT_MODEL
