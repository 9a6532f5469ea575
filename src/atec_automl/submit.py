"""Submissions: refit the chosen leaderboard entry (or a rank-average blend of the top k) on every
labelled day, predict test_a and test_b, validate, and write the A/B files atomically.

Which entries: `submit.entry=<id>`, else by `submit.choose`: `best` (mean score), `lower_bound`
(best lower bound of the 90 % bootstrap interval), or `indistinguishable` (a blend of the entries
that a paired bootstrap on the same scored rows cannot tell from the best). Blends skip entries
whose scored-days predictions are identical to one already taken. `submit.refit=false` uses the
entries' stored test predictions (made by each trial's last-fold model) instead of refitting.

`submissions/<name>/` holds `test_a.csv` and `test_b.csv` (`<id column>,score`, one row per test
row), `manifest.json` (entries, their configs, data fingerprint, git commit, time) and, when refit,
the refit models with what scoring new events needs (`artifact.py`; `load_submission` reads them
back). The folder is built under a temporary name and renamed into place, so a crash never leaves
half of it.

A resubmission identical to one in `submit.dir` (same entries, data fingerprint, git commit and
`submit` settings) reuses that folder instead of writing another; a checkout with uncommitted
changes (commit `...-dirty`) never counts as the same code. `list_submissions` reads the folder's
manifests back for `task=submissions` and the report.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from atec_automl.artifact import NO_MODEL, Member, file_checksums, rank_average, save_members
from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.evaluation import distinguishable
from atec_automl.features.build import as_spec, build_features
from atec_automl.leaderboard import OUTSIDE_FAMILIES, Entry, Leaderboard
from atec_automl.models.base import ModelData
from atec_automl.pipeline import Prepared, refit_all
from atec_automl.progress import progress
from atec_automl.provenance import current_git_commit
from atec_automl.recipe import Recipe
from atec_automl.staging import remove_stale_staging, replacing_dir
from atec_automl.submissions import read_manifests

BOARDS = ("test_a", "test_b")
CHOICES = ("best", "lower_bound", "indistinguishable")
MAX_INDISTINGUISHABLE = 5
EntryRecipe = Callable[[Entry], Recipe]
"""The recipe that refits a leaderboard entry (built by the task layer from the entry's recorded config)."""


@dataclass(frozen=True)
class SubmitSettings:
    """The `submit` settings: which entries (`entry`, else `choose` and `blend_top`), whether to refit,
    the submission's name (None: from the time and the entries) and the folder of submissions."""

    dir: Path = Path("submissions")
    entry: int | None = None
    choose: str = "best"
    blend_top: int = 1
    refit: bool = True
    name: str | None = None

    def identity(self) -> dict:
        """The settings that change what a submission holds."""
        return {"entry": self.entry, "choose": self.choose, "blend_top": self.blend_top, "refit": self.refit}


@dataclass
class Submission:
    """Scores for each board's test rows, in timeline order, and how they were made (`members`: the
    refit models, none when the scores are stored predictions)."""

    scores: dict[str, np.ndarray]
    entries: list[Entry]
    name: str
    members: list[Member] = field(default_factory=list)


def choose_entries(board: Leaderboard, fingerprint: str, entry_id: int | None, blend_top: int,
                   choose: str = "best") -> list[Entry]:
    """`entry_id`'s entry, else the entries `choose` picks among those scored on this data (see the module)."""
    if entry_id is not None:
        entry = board.get(int(entry_id))
        if not entry.confirmed:
            raise AtecError(f"submit: entry {entry_id}'s trial never completed (its worker stopped before Optuna "
                            "recorded it); the trial is retried by the next sweep")
        if entry.data_fingerprint != fingerprint:
            raise AtecError(f"submit: entry {entry_id} was scored on data {entry.data_fingerprint[:12]}, "
                            f"not on the configured data {fingerprint[:12]}")
        return [entry]
    if choose not in CHOICES:
        raise AtecError(f"submit.choose: {choose!r} is not one of {', '.join(CHOICES)}")
    ranked = [e for e in board.ranked(data=fingerprint) if e.family not in OUTSIDE_FAMILIES]
    if not ranked:
        raise AtecError(f"submit: the leaderboard {board.location} has no model entry for data {fingerprint[:12]}; "
                        "run a sweep (python run.py task=sweep) first")
    if choose == "lower_bound":
        ranked.sort(key=lambda e: -math.inf if e.score_low is None else e.score_low, reverse=True)
    wanted = max(1, int(blend_top))
    if choose == "indistinguishable":
        ranked = indistinguishable_from_best(board, ranked)
        wanted = max(wanted, MAX_INDISTINGUISHABLE)
    return distinct_predictions(board, ranked, wanted)


def indistinguishable_from_best(board: Leaderboard, ranked: list[Entry]) -> list[Entry]:
    """The best entry and those a paired bootstrap cannot tell from it (entries without replicates are left out)."""
    best = board.bootstrap(ranked[0].id)
    if best is None:
        return ranked[:1]
    others = [(e, board.bootstrap(e.id)) for e in ranked[1:]]
    return [ranked[0]] + [e for e, draws in others if draws is not None and not distinguishable(best, draws)]


def distinct_predictions(board: Leaderboard, ranked: list[Entry], wanted: int) -> list[Entry]:
    """The first `wanted` entries of `ranked`, skipping any whose scored predictions repeat an earlier one's."""
    chosen, seen = [], set()
    for entry in ranked:
        digest = board.predictions(entry.id).digest() if len(ranked) > 1 and wanted > 1 else str(entry.id)
        if digest in seen:
            continue
        seen.add(digest)
        chosen.append(entry)
        if len(chosen) == wanted:
            break
    return chosen


def test_rows(dataset: Dataset) -> dict[str, np.ndarray]:
    """Row positions of each board's test part that has rows."""
    rows = {board: dataset.part_rows(board) for board in BOARDS}
    rows = {board: r for board, r in rows.items() if len(r)}
    if not rows:
        raise AtecError("submit: the data has no test_a or test_b rows to predict (set data.test_a / data.test_b)")
    return rows


def predict_entry(entry: Entry, recipe: Recipe, prepared: Prepared, rows: dict[str, np.ndarray],
                  work_dir: Path) -> tuple[Member, dict[str, np.ndarray]]:
    """Refit one entry (its `recipe`) on all labelled days and predict every board's rows."""
    dataset = prepared.dataset
    same_features = prepared.features.fingerprint == f"{dataset.fingerprint}:{as_spec(recipe.features).fingerprint()}"
    features = prepared.features if same_features else build_features(dataset, recipe.features)
    refit_on = Prepared(dataset, features, prepared.folds)
    progress(f"[submit] refitting entry {entry.id} ({entry.family}, {entry.label()}, score {entry.score:.4f}) "
             f"on {len(dataset.part_rows('train')):,} labelled rows")
    model = refit_all(recipe, refit_on, entry.best_iteration, work_dir / f"entry{entry.id}")
    member = Member(entry.id, entry.family, model, dict(recipe.features))
    return member, {board: model.predict(ModelData(features, board_rows)) for board, board_rows in rows.items()}


def stored_predictions(entry: Entry, board: Leaderboard, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The entry's stored test predictions (no refit), checked against today's test rows."""
    stored = board.test_scores(entry.id)
    for name, board_rows in rows.items():
        if name not in stored or len(stored[name]) != len(board_rows):
            raise AtecError(f"submit.refit=false: entry {entry.id} has no stored predictions of {name}'s "
                            f"{len(board_rows):,} rows; use submit.refit=true")
    progress(f"[submit] entry {entry.id} ({entry.family}, {entry.label()}, score {entry.score:.4f}): "
             "stored test predictions of its last-fold model")
    return {name: stored[name].astype(np.float64) for name in rows}


def chosen_entries(settings: SubmitSettings, prepared: Prepared, board: Leaderboard) -> list[Entry]:
    """The entries the `submit` settings choose on this data."""
    return choose_entries(board, prepared.dataset.fingerprint, settings.entry, settings.blend_top, settings.choose)


def identity(entries: list[Entry], fingerprint: str, git_commit: str, settings: dict) -> dict:
    """What makes two submissions the same: entries, data, code and settings."""
    return {"entries": [e.id for e in entries], "data_fingerprint": fingerprint, "git_commit": git_commit,
            "submit_settings": settings}


def manifest_identity(content: dict) -> dict:
    """The identity recorded in a manifest (manifests written before `submit_settings` match nothing)."""
    return {"entries": [e.get("id") for e in content.get("entries", [])],
            "data_fingerprint": content.get("data_fingerprint"), "git_commit": content.get("git_commit"),
            "submit_settings": content.get("submit_settings")}


def identical_submission(root: Path, wanted: dict) -> Path | None:
    """The folder in `root` holding a submission of identity `wanted`; None if none (or the code is uncommitted)."""
    if str(wanted["git_commit"]).endswith("-dirty") or wanted["git_commit"] == "unknown":
        return None
    for folder, content in read_manifests(root):
        if manifest_identity(content) == wanted:
            return folder
    return None


def make_submission(settings: SubmitSettings, prepared: Prepared, board: Leaderboard, work_dir: Path,
                    entries: list[Entry] | None = None, entry_recipe: EntryRecipe | None = None) -> Submission:
    """Refit (each with its `entry_recipe`) or read the stored predictions of the chosen entries; blend
    them when there are several."""
    entries = entries or chosen_entries(settings, prepared, board)
    rows = test_rows(prepared.dataset)
    members: list[Member] = []
    if settings.refit:
        if entry_recipe is None:
            raise AtecError("submit: refitting an entry needs its recipe (entry_recipe)")
        members, per_entry = map(list, zip(*[predict_entry(entry, entry_recipe(entry), prepared, rows, work_dir)
                                             for entry in entries]))
    else:
        per_entry = [stored_predictions(entry, board, rows) for entry in entries]
    scores = {b: rank_average([p[b] for p in per_entry]) for b in rows}
    ids = "-".join(str(e.id) for e in entries)
    default_name = f"{time.strftime('%Y%m%d-%H%M%S')}-{'entry' if len(entries) == 1 else 'blend'}{ids}"
    return Submission(scores, entries, str(settings.name or default_name), members)


def submission_frame(dataset: Dataset, board: str, scores: np.ndarray) -> pd.DataFrame:
    """The `<id column>,score` table of one board, checked: one row per test row, no NaN, no duplicates."""
    rows = dataset.part_rows(board)
    ids = dataset.frame["event_id"].to_numpy()[rows]
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(rows):
        raise AtecError(f"submit {board}: {len(scores)} scores for {len(rows)} test rows")
    if not np.isfinite(scores).all():
        raise AtecError(f"submit {board}: {int((~np.isfinite(scores)).sum())} scores are NaN or infinite "
                        f"(first id {ids[~np.isfinite(scores)][0]})")
    frame = pd.DataFrame({dataset.id_column: ids, "score": scores})
    duplicated = frame[dataset.id_column].duplicated()
    if duplicated.any():
        raise AtecError(f"submit {board}: duplicate id {frame[dataset.id_column][duplicated].iloc[0]}")
    return frame


def manifest(submission: Submission, prepared: Prepared, settings: SubmitSettings) -> dict:
    """What the files are and how they were made."""
    return {
        "name": submission.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": current_git_commit(),
        "data_fingerprint": prepared.dataset.fingerprint,
        "data_files": {part: str(path) for part, path in prepared.dataset.sources.items()},
        "method": "entry" if len(submission.entries) == 1 else f"rank-average blend of {len(submission.entries)} entries",
        "choose": settings.choose,
        "refit": settings.refit,
        "submit_settings": settings.identity(),
        "entries": [{"id": e.id, "family": e.family, "study": e.study, "trial": e.trial, "policy": e.policy,
                     "score": e.score, "interval": [e.score_low, e.score_high], "frauds_scored": e.frauds,
                     "tpr1": e.tpr1, "tpr2": e.tpr2, "tpr3": e.tpr3, "auc": e.auc, "params": e.params,
                     "refit_steps": None if e.best_iteration is None else e.best_iteration + 1,
                     "config_yaml": e.config_yaml} for e in submission.entries],
        "files": {board: {"file": f"{board}.csv", "rows": int(len(scores))} for board, scores in submission.scores.items()},
    }


def model_section(submission: Submission, prepared: Prepared, data_format: Mapping[str, Any] | None,
                  staging: Path) -> dict:
    """Save the refit models into the staging folder; the manifest's `model` section (None without refit).
    `data_format` is the training files' format (a `_target_` mapping), which new events are read with."""
    if not submission.members:
        return {"model": None, "model_note": NO_MODEL}
    if data_format is None:
        raise AtecError("submit: a refit submission needs the data format its new events are read with")
    section = save_members(staging, submission.members, prepared.dataset, dict(data_format))
    section["checksums"] = file_checksums(staging)
    return {"model": section}


def write_submission(submission: Submission, prepared: Prepared, settings: SubmitSettings,
                     data_format: Mapping[str, Any] | None = None) -> Path:
    """Write the board files and the manifest into `submissions/<name>/`, all or nothing."""
    root = Path(settings.dir)
    target = root / submission.name
    if target.exists():
        raise AtecError(f"submit: {target} already exists; choose another submit.name")
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root)
    with replacing_dir(target) as staging:
        for board, scores in submission.scores.items():
            submission_frame(prepared.dataset, board, scores).to_csv(staging / f"{board}.csv", index=False, float_format="%.8g")
        content = manifest(submission, prepared, settings)
        content.update(model_section(submission, prepared, data_format, staging))
        (staging / "manifest.json").write_text(json.dumps(content, indent=2, default=str))
    return target


def submit(settings: SubmitSettings, prepared: Prepared, board: Leaderboard, work_dir: Path, entry_recipe: EntryRecipe,
           data_format: Mapping[str, Any]) -> Path:
    """Make, validate and write the submission (or find an identical one); print the true A/B scores
    when hidden labels exist."""
    entries = chosen_entries(settings, prepared, board)
    wanted = identity(entries, prepared.dataset.fingerprint, current_git_commit(), settings.identity())
    existing = identical_submission(Path(settings.dir), wanted)
    if existing is not None:
        progress(f"[submit] {existing} already holds this submission (entries {', '.join(map(str, wanted['entries']))}, "
                 "the same data, commit and submit settings): reused, nothing written")
        return existing
    submission = make_submission(settings, prepared, board, work_dir, entries, entry_recipe)
    target = write_submission(submission, prepared, settings, data_format)
    progress(f"[submit] wrote {target}: " + ", ".join(f"{name}.csv ({len(s):,} rows)" for name, s in submission.scores.items()))
    if prepared.truth is not None:
        for name, figures in prepared.truth.board_figures(submission.scores).items():
            progress(f"[submit] true {name} score on its last {prepared.truth.scored_days} days ({figures['rows']:,} rows): "
                     + (figures["undefined"] if "undefined" in figures else
                        f"{figures['score']:.4f} (TPR {figures['tpr1']:.3f} / {figures['tpr2']:.3f} / "
                        f"{figures['tpr3']:.3f}, AUC {figures['auc']:.4f})"))
    return target
