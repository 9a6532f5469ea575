"""A self-contained HTML report of the local leaderboard (plotly.js embedded: works offline).

One data set per report: the entries of the given data fingerprint (by default the best entry's),
with a note of how many entries of other data sets are left out. Sections: the ranked table; ROC curves of the top entries on a log FPR axis with marks at the
metric's FPR targets (from the stored predictions, pooled over folds); the optimisation history of
each study (score by trial number with the best-so-far line); parameter importances per study (the
Optuna study's fANOVA importances when its storage is given, otherwise the absolute Spearman
correlation of each numeric parameter with the score, or the correlation ratio of a categorical
one, over the study's leaderboard entries), from 2 complete trials, else a note saying why not; the
score by model family; where entries have true board scores (synthetic data), local against true
scores with their rank correlation and optimism; the submissions made on this data (their
manifests in the submissions folder) with their entries' scores.
The table shows each entry's grey-label policy, its score with the 90 % bootstrap interval, the
frauds scored, and marks (~) the entries a paired bootstrap cannot tell from the best.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import datetime, timezone
from itertools import cycle
from pathlib import Path

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio

from atec_automl.evaluation import interval_text, marks_against_best
from atec_automl.staging import write_text_atomically
from atec_automl.leaderboard import Entry, Leaderboard, Predictions
from atec_automl.metric import TARGET_FPRS
from atec_automl.ranks import spearman
from atec_automl.submissions import damaged_manifests, read_manifests
from atec_automl.truth import trust

ROC_GRID_POINTS = 400
PALETTE = plotly.colors.qualitative.Plotly
MIN_TRIALS_FOR_IMPORTANCE = 2
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f0f3f8; }
td.text, #submissions th { text-align: left; }
h2 { margin-top: 1.6em; }
.note { color: #666; font-size: 0.9em; }
"""


def roc_on_log_grid(predictions: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the pooled predictions at log-spaced FPRs from 1/negatives to 1 (a step ROC)."""
    order = np.argsort(-predictions.score, kind="stable")
    positive = predictions.label[order] == 1
    score = predictions.score[order]
    last_of_tie = np.append(score[1:] != score[:-1], True)
    tp = np.cumsum(positive)[last_of_tie]
    fp = np.cumsum(~positive)[last_of_tie]
    fpr, tpr = fp / max(fp[-1], 1), tp / max(tp[-1], 1)
    grid = np.geomspace(1.0 / max(fp[-1], 1), 1.0, ROC_GRID_POINTS)
    reached = np.searchsorted(fpr, grid, side="right") - 1
    return grid, np.where(reached >= 0, tpr[np.maximum(reached, 0)], 0.0)


def roc_figure(entries: list[Entry], board: Leaderboard) -> go.Figure:
    """ROC curves of `entries` on a log FPR axis, dashed vertical marks at the target FPRs."""
    figure = go.Figure()
    for entry in entries:
        fpr, tpr = roc_on_log_grid(board.predictions(entry.id))
        figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line_shape="hv",
                                    name=f"#{entry.id} {entry.label()} ({entry.score:.4f})"))
    for target in TARGET_FPRS:
        figure.add_trace(go.Scatter(x=[target, target], y=[0, 1], mode="lines", showlegend=False,
                                    line={"dash": "dash", "color": "#888", "width": 1},
                                    hovertext=f"FPR {target}", hoverinfo="text"))
    figure.update_layout(title="ROC of the top entries (scored days, folds pooled)",
                         xaxis={"type": "log", "title": "false positive rate (log)"},
                         yaxis={"title": "true positive rate", "range": [0, 1.02]}, height=480)
    return figure


def history_figure(entries: list[Entry]) -> go.Figure:
    """Score by trial number per study, with each study's best-so-far line."""
    figure = go.Figure()
    by_study: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.trial is not None:
            by_study[entry.study].append(entry)
    for (study, trials), colour in zip(sorted(by_study.items()), cycle(PALETTE)):
        trials.sort(key=lambda e: e.trial)
        numbers = [e.trial for e in trials]
        scores = np.array([e.score for e in trials])
        figure.add_trace(go.Scatter(x=numbers, y=scores, mode="markers", name=f"{study}: trials",
                                    legendgroup=study, marker={"color": colour, "opacity": 0.6}))
        figure.add_trace(go.Scatter(x=numbers, y=np.maximum.accumulate(scores), mode="lines", line_shape="hv",
                                    name=f"{study}: best so far", legendgroup=study, line={"color": colour}))
    last_trial = max((e.trial for trials in by_study.values() for e in trials), default=0)
    figure.update_layout(title="Optimisation history",
                         xaxis={"title": "trial number", "tick0": 0, "dtick": max(1, math.ceil(last_trial / 10))},
                         yaxis={"title": "ATEC score"}, height=420)
    return figure


def family_figure(entries: list[Entry]) -> go.Figure:
    """Box plot of the score by model family, every entry shown as a point."""
    figure = go.Figure()
    by_family: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        by_family[entry.family].append(entry.score)
    for family, scores in sorted(by_family.items()):
        figure.add_trace(go.Box(y=scores, name=family, boxpoints="all", jitter=0.4, pointpos=0))
    figure.update_layout(title="Score by model family", yaxis={"title": "ATEC score"}, height=420, showlegend=False)
    return figure


def correlation_importances(entries: list[Entry]) -> dict[str, float]:
    """|Spearman rho| of numeric parameters, correlation ratio of categorical ones, with the score."""
    scores = np.array([e.score for e in entries])
    names = sorted({name for e in entries for name in e.params})
    importances = {}
    for name in names:
        pairs = [(e.params[name], s) for e, s in zip(entries, scores) if e.params.get(name) is not None]
        if len(pairs) < MIN_TRIALS_FOR_IMPORTANCE or len({repr(v) for v, _ in pairs}) < 2:
            continue
        values, y = [v for v, _ in pairs], np.array([s for _, s in pairs])
        if all(isinstance(v, (int, float, bool)) for v in values):
            rho = spearman(np.array(values, dtype=float), y)
            importances[name] = float(abs(rho)) if np.isfinite(rho) else 0.0
        else:
            importances[name] = correlation_ratio([repr(v) for v in values], y)
    return importances


def correlation_ratio(groups: list[str], y: np.ndarray) -> float:
    """Correlation ratio eta in [0, 1]: share of the score's spread explained by the category."""
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0.0:
        return 0.0
    labels = np.array(groups)
    between = sum(float((labels == g).sum()) * (y[labels == g].mean() - y.mean()) ** 2 for g in set(groups))
    return float(np.sqrt(between / total))


def optuna_importances(study_name: str, storage: str) -> dict[str, float] | None:
    """fANOVA importances of the Optuna study, or None if it is not in `storage` or too small."""
    import optuna

    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).exists():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study_name not in optuna.study.get_all_study_names(storage=storage):
        return None
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return None


def importance_figure(study: str, entries: list[Entry], storage: str | None) -> go.Figure | None:
    """Horizontal bars of one study's parameter importances, titled with the method used; None if none."""
    importances = optuna_importances(study, storage) if storage else None
    method = f"Optuna fANOVA importance from {storage}"
    if importances is None:
        importances = correlation_importances(entries)
        method = "|Spearman correlation| with the score over leaderboard entries (categorical: correlation ratio)"
    if not importances:
        return None
    names = sorted(importances, key=importances.get)
    figure = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h"))
    figure.update_layout(title=f"Parameter importance, study {study}<br><sub>{html.escape(method)}</sub>",
                         xaxis={"title": "importance", "range": [0, 1]}, height=160 + 28 * len(names))
    return figure


def trust_figure(entries: list[Entry]) -> go.Figure | None:
    """Local score against the true A and B scores of every entry that has them; None if none has."""
    figure = go.Figure()
    for board, attribute in (("A", "true_a"), ("B", "true_b")):
        known = [e for e in entries if getattr(e, attribute) is not None]
        if known:
            figure.add_trace(go.Scatter(x=[e.score for e in known], y=[getattr(e, attribute) for e in known],
                                        mode="markers", name=f"true {board}", text=[f"#{e.id} {e.policy}" for e in known]))
    if not figure.data:
        return None
    summary = trust([e.score for e in entries], [e.true_a for e in entries], [e.true_b for e in entries])
    low = min(min(t.x) for t in figure.data)
    high = max(max(t.x) for t in figure.data)
    figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="true = local",
                                line={"dash": "dot", "color": "#888"}))
    figure.update_layout(title=f"Local score against the true board scores<br><sub>{html.escape(summary.line())}</sub>",
                         xaxis={"title": "local score (mean over folds)"}, yaxis={"title": "true score"}, height=480)
    return figure


def table_html(entries: list[Entry], marks: dict[int, str] | None = None) -> str:
    """The ranked entries as an HTML table."""
    marks = marks or {}
    header = ["rank", "id", "family", "study/trial", "policy", "score", "90% interval", "vs best", "frauds", "TPR1",
              "TPR2", "TPR3", "AUC", "true A", "true B", "folds", "fit s", "best iter", "data", "commit", "created"]
    rows = []
    for rank, e in enumerate(entries, start=1):
        numbers = [rank, e.id]
        text = [e.family, e.label(), e.policy or "-"]
        metrics = [f"{e.score:.4f}", interval_text(e), marks.get(e.id, ""), e.frauds] + \
            [f"{v:.4f}" for v in (e.tpr1, e.tpr2, e.tpr3, e.auc)] + \
            ["-" if v is None else f"{v:.4f}" for v in (e.true_a, e.true_b)]
        rest = [len(e.fold_scores), f"{e.fit_seconds:.1f}", "" if e.best_iteration is None else e.best_iteration]
        tail = [e.data_fingerprint[:8], e.git_commit[:12], e.created_at or ""]
        cells = ([f"<td>{v}</td>" for v in numbers] + [f'<td class="text">{html.escape(v)}</td>' for v in text]
                 + [f"<td>{v}</td>" for v in metrics + rest]
                 + [f'<td class="text">{html.escape(str(v))}</td>' for v in tail])
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{h}</th>" for h in header)
    return f'<table id="ranked"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def figures_html(figures: list[go.Figure]) -> list[str]:
    """Each figure as a div; plotly.js is embedded once, with the first."""
    return [pio.to_html(figure, full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False},
                        default_height=f"{figure.layout.height or 450}px")
            for i, figure in enumerate(figures)]


def importance_note(study: str, entries: list[Entry]) -> str:
    """Why a study has no importance plot."""
    if len(entries) < MIN_TRIALS_FOR_IMPORTANCE:
        return (f"{study}: {len(entries)} complete trial{'s' if len(entries) != 1 else ''}; parameter importances "
                f"need at least {MIN_TRIALS_FOR_IMPORTANCE}")
    return f"{study}: no parameter took two different values over its {len(entries)} complete trials"


def submissions_html(root: Path, data: str, board: Leaderboard) -> str:
    """The submissions made on `data` as a table (entries with their local and true scores), and a note
    of those on other data."""
    found = read_manifests(root)
    mine = [(folder, content) for folder, content in found if str(content.get("data_fingerprint", "")).startswith(data)]
    other = len(found) - len(mine)
    elsewhere = f" ({other} on other data left out)" if other else ""
    damaged = damaged_manifests(root)
    damaged_note = (f"<p class='note' id='damaged-submissions'>Damaged, not listed (manifest.json unreadable): "
                    f"{html.escape(', '.join(folder.name for folder, _ in damaged))}.</p>" if damaged else "")
    if not mine:
        return (f"<p class='note' id='no-submissions'>No submissions on this data in {html.escape(str(root))}"
                f"{elsewhere}.</p>{damaged_note}")
    known = {e.id: e for e in board.ranked(data=data)}
    rows = []
    for folder, content in mine:
        entries = content.get("entries", [])
        scored = [f"#{e.get('id')} {e['score']:.4f}" if e.get("score") is not None else f"#{e.get('id')}" for e in entries]
        single = known.get(entries[0].get("id")) if len(entries) == 1 else None
        true = ["-" if single is None or v is None else f"{v:.4f}" for v in
                ((single.true_a, single.true_b) if single is not None else (None, None))]
        cells = [folder.name, str(content.get("method", "")), ", ".join(scored), *true,
                 "refit" if content.get("refit", True) else "stored", str(content.get("git_commit", ""))[:12],
                 str(content.get("created_at", ""))]
        rows.append("<tr>" + "".join(f'<td class="text">{html.escape(c)}</td>' for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("name", "method", "entries (local score)", "true A", "true B",
                                             "predictions", "commit", "created"))
    return (f'<table id="submissions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f"<p class='note'>{len(mine)} submission{'s' if len(mine) != 1 else ''} in {html.escape(str(root))}"
            f"{elsewhere}; true scores where the data has hidden labels (single entries).</p>{damaged_note}")


def shown_data(board: Leaderboard, data: str | None) -> tuple[str | None, str]:
    """The data fingerprint (prefix) the report shows and a note saying which and what is left out."""
    everything = board.ranked()
    chosen = data or (everything[0].data_fingerprint if everything else None)
    if chosen is None:
        return None, ""
    others = [e for e in everything if not e.data_fingerprint.startswith(chosen)]
    source = "configured" if data else "the best entry's"
    note = f"data {chosen[:16]} ({source})"
    if others:
        count = len({e.data_fingerprint for e in others})
        note += (f"; {len(others)} entr{'ies' if len(others) != 1 else 'y'} of {count} other data "
                 f"set{'s' if count != 1 else ''} left out (leaderboard.data=FINGERPRINT shows another)")
    return chosen, note


def build_report(board: Leaderboard, top: int, storage: str | None, data: str | None = None,
                 submissions: Path | None = None) -> str:
    """The whole report page as one HTML string, for the entries of one data set (see `shown_data`)."""
    data, data_note = shown_data(board, data)
    entries = board.ranked(data=data) if data else []
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [f"<h1>ATEC local leaderboard</h1><p class='note'>{html.escape(board.location)}: "
             f"{len(entries)} entries; generated {stamp}</p>",
             f"<p class='note' id='data-note'>{html.escape(data_note)}</p>" if data_note else ""]
    if not entries:
        parts.append("<p>No entries yet.</p>")
        return page(parts)
    parts += ["<h2>Ranked entries</h2>", table_html(entries, marks_against_best(board, entries)),
              "<p class='note'>interval: 90 % bootstrap interval of the mean score over folds; vs best: ~ where a "
              "paired bootstrap on the same scored rows cannot tell the entry from the best (95 %).</p>"]
    if submissions is not None:
        parts += ["<h2>Submissions</h2>", submissions_html(submissions, data, board)]
    sections: list[tuple[str, go.Figure]] = [("ROC curves", roc_figure(entries[:top], board))]
    trust_plot = trust_figure(entries)
    if trust_plot is not None:
        sections.append(("Local against true scores", trust_plot))
    if any(e.trial is not None for e in entries):
        sections.append(("Optimisation history", history_figure(entries)))
    notes = []
    for study in sorted({e.study for e in entries if e.trial is not None}):
        study_entries = [e for e in entries if e.study == study]
        figure = importance_figure(study, study_entries, storage) if len(study_entries) >= MIN_TRIALS_FOR_IMPORTANCE else None
        if figure is not None:
            sections.append((f"Parameter importance: {study}", figure))
        else:
            notes.append(importance_note(study, study_entries))
    sections.append(("Score by family", family_figure(entries)))
    for (title, _), div in zip(sections, figures_html([figure for _, figure in sections])):
        parts += [f"<h2>{html.escape(title)}</h2>", div]
    if notes:
        parts += ["<h2>Parameter importance: not shown</h2>",
                  "<ul id='importance-notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"]
    return page(parts)


def page(parts: list[str]) -> str:
    """Wrap body parts into a complete HTML document."""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ATEC leaderboard</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_report(board: Leaderboard, path: str | Path, top: int = 5, storage: str | None = None,
                 data: str | None = None, submissions: Path | None = None) -> Path:
    """Write the report to `path` atomically (a temp file in the same folder, then rename)."""
    target = Path(path)
    write_text_atomically(target, build_report(board, top, storage, data, submissions))
    return target
