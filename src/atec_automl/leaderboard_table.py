"""The leaderboard as a ranked text table: what `task=leaderboard` and the end of a sweep print."""
from __future__ import annotations

from atec_automl.evaluation import interval_text, marks_against_best
from atec_automl.leaderboard import Entry, Leaderboard
from atec_automl.truth import trust

COLUMNS = ("rank", "id", "family", "study/trial", "policy", "score", "interval90", "vs-best", "frauds", "TPR1",
           "TPR2", "TPR3", "AUC", "true-A", "true-B", "folds", "fit-s", "data")


def optional(value: float | None) -> str:
    """A score with 4 decimals, or "-"."""
    return "-" if value is None else f"{value:.4f}"


def table_rows(entries: list[Entry], marks: dict[int, str] | None = None) -> list[tuple[str, ...]]:
    """One row of display strings per entry, in rank order."""
    marks = marks or {}
    return [(str(rank), str(e.id), e.family, e.label(), e.policy or "-", f"{e.score:.4f}", interval_text(e),
             marks.get(e.id, "-"), str(e.frauds), f"{e.tpr1:.4f}", f"{e.tpr2:.4f}", f"{e.tpr3:.4f}", f"{e.auc:.4f}",
             optional(e.true_a), optional(e.true_b), str(len(e.fold_scores)), f"{e.fit_seconds:.1f}",
             e.data_fingerprint[:8])
            for rank, e in enumerate(entries, start=1)]


def format_table(entries: list[Entry], marks: dict[int, str] | None = None) -> str:
    """The entries as an aligned text table with a header line."""
    rows = [COLUMNS, *table_rows(entries, marks)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    left = {"family", "study/trial", "policy", "vs-best", "data"}
    return "\n".join("  ".join(cell.ljust(w) if name in left else cell.rjust(w)
                               for cell, w, name in zip(row, widths, COLUMNS)).rstrip() for row in rows)


def print_leaderboard(board: Leaderboard, top: int | None = None, family: str | None = None,
                      study: str | None = None, data: str | None = None) -> None:
    """Print the ranked entries that pass the filters (`data`: a fingerprint or its prefix), or say that none do."""
    filters = ", ".join(f"{name}={value}" for name, value in (("family", family), ("study", study), ("data", data))
                        if value is not None)
    entries = board.ranked(top=top, family=family, study=study, data=data)
    if not entries:
        where = f" matching {filters}" if filters else ""
        print(f"The leaderboard {board.location} has no entries{where} yet: run a sweep "
              f"(task=sweep) or score a prediction file (task=score file=preds.csv score.add=true).")
        return
    print(f"Leaderboard {board.location}" + (f" ({filters})" if filters else ""))
    print(format_table(entries, marks_against_best(board, entries)))
    print("interval90: 90 % bootstrap interval of the mean score over folds; vs-best: ~ a paired bootstrap on the "
          "same scored rows cannot tell it from the best (95 %), < it is worse; frauds: frauds scored over the folds")
    everything = board.ranked(family=family, study=study, data=data)
    if any(e.true_a is not None or e.true_b is not None for e in everything):
        print(trust([e.score for e in everything], [e.true_a for e in everything], [e.true_b for e in everything]).line())
