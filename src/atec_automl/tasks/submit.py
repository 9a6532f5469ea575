"""task=submit: refit the best entry (or `submit.entry=<id>`, or a blend of the top `submit.blend_top`)
on all labelled days and write `submissions/<name>/{test_a.csv,test_b.csv,manifest.json}`; an identical
earlier submission (same entries, data, commit and settings) is reused instead."""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from atec_automl.leaderboard import Leaderboard
from atec_automl.pipeline import Prepared, prepare
from atec_automl.progress import progress
from atec_automl.provenance import current_git_commit
from atec_automl.submit import (chosen_entries, identical_submission, identity, make_submission, submit_settings,
                                write_submission)


def submit(cfg: DictConfig, prepared: Prepared) -> Path:
    """Make, validate and write the submission; print the true A/B scores when hidden labels exist."""
    work_dir = Path(HydraConfig.get().runtime.output_dir) / "submit"
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    entries = chosen_entries(cfg, prepared, board)
    wanted = identity(entries, prepared.dataset.fingerprint, current_git_commit(), submit_settings(cfg))
    existing = identical_submission(Path(cfg.submit.dir), wanted)
    if existing is not None:
        progress(f"[submit] {existing} already holds this submission (entries {', '.join(map(str, wanted['entries']))}, "
                 "the same data, commit and submit settings): reused, nothing written")
        return existing
    submission = make_submission(cfg, prepared, board, work_dir, entries)
    target = write_submission(submission, prepared, cfg)
    progress(f"[submit] wrote {target}: " + ", ".join(f"{board}.csv ({len(s):,} rows)" for board, s in submission.scores.items()))
    if prepared.truth is not None:
        for board, figures in prepared.truth.board_figures(submission.scores).items():
            progress(f"[submit] true {board} score on its last {cfg.split.scored_days} days ({figures['rows']:,} rows): "
                     + (figures["undefined"] if "undefined" in figures else
                        f"{figures['score']:.4f} (TPR {figures['tpr1']:.3f} / {figures['tpr2']:.3f} / "
                        f"{figures['tpr3']:.3f}, AUC {figures['auc']:.4f})"))
    return target


def run(cfg: DictConfig) -> None:
    """Prepare the data and features, then submit."""
    submit(cfg, prepare(cfg))
