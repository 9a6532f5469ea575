"""task=predict: score a file of new events with a saved submission, writing `<id column>,score`.

`python run.py task=predict predict.submission=submissions/<name> predict.events=new.csv
[predict.history=[a.csv,b.csv]] [predict.output=scores.csv]`. Each event's features see only strictly
earlier events: the history files (by default the files the submission was trained on) and the
file's own earlier events. The file is read and validated as the training files were.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig

from atec_automl.artifact import load_submission, score_file, training_files
from atec_automl.errors import AtecError
from atec_automl.staging import write_atomically

OUTPUT_DIR = Path("predictions")


def history_option(value: object) -> list[Path] | None:
    """`predict.history` as a list of paths (one path or a list); None when not given."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    return [Path(str(item)) for item in items]


def required(section: DictConfig, key: str, name: str) -> str:
    """A key that must be set, else one line saying how."""
    value = section.get(key)
    if value is None or str(value) == "":
        raise AtecError(f"{name}.{key} is not set: give {name}.{key}=<path>")
    return str(value)


def run(cfg: DictConfig) -> None:
    """Load the submission, score the events file, write the scores atomically."""
    saved = load_submission(required(cfg.predict, "submission", "predict"))
    events = Path(required(cfg.predict, "events", "predict"))
    history = history_option(cfg.predict.get("history")) or training_files(saved)
    scores = score_file(saved, history, events)
    output = Path(cfg.predict.output) if cfg.predict.get("output") else \
        OUTPUT_DIR / f"{events.name.split('.')[0]}-{saved.name}.csv"
    write_atomically(output, lambda tmp: scores.to_csv(tmp, index=False, float_format="%.10g"))
    print(f"[predict] wrote {output}: {len(scores):,} events scored by {saved.name} "
          f"(history: {', '.join(str(p) for p in history)})")
