"""task=train: fit one model (`model`, `labels`, `trainer` groups) on the last fold of `split`, print
its ATEC score and TPRs on the fold's scored days, and save it under the run dir (`<run dir>/model`,
read back with `atec_automl.models.load_model`), with the figures in `<run dir>/train.json`."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult
from atec_automl.models.base import Model
from atec_automl.pipeline import fit_fold
from atec_automl.staging import replacing_dir, write_text_atomically
from atec_automl.tasks._experiment import prepare, recipe


def save_model(model: Model, target: Path) -> None:
    """Save the fitted model into `target` whole: written beside it, then renamed into place."""
    with replacing_dir(target) as staging:
        model.save(staging)


def summary(family: str, fold: str, result: FoldResult) -> dict:
    """The figures of a fitted fold, JSON-ready."""
    score = result.atec
    return {"family": family, "fold": fold, "score": score.score, "tpr1": score.tpr1, "tpr2": score.tpr2,
            "tpr3": score.tpr3, "auc": result.auc, "frauds": result.frauds, "best_iteration": result.best_step,
            "fit_seconds": result.fit_seconds, "predict_seconds": result.predict_seconds}


def run(cfg: DictConfig) -> None:
    """Prepare data, features and folds; fit and score the last fold; save the model and its figures."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (run_dir / "model").exists():
        raise AtecError(f"hydra.run.dir={run_dir}: it already holds a model ({run_dir / 'model'}, an earlier "
                        "task=train); give another run dir, or move that model away")
    fit_recipe = recipe(cfg)
    family = fit_recipe.family
    prepared = prepare(cfg)
    fold = prepared.folds[-1]
    labels = HydraConfig.get().runtime.choices.get("labels")
    print(f"[train] model={family} labels={labels} on {fold.describe()}", flush=True)
    result, model = fit_fold(fit_recipe, prepared, fold, root_dir=run_dir / "work")
    figures = summary(family, fold.describe(), result)
    save_model(model, run_dir / "model")
    text = json.dumps(figures, indent=2)
    write_text_atomically(run_dir / "train.json", text)
    print(f"[train] ATEC score {figures['score']:.4f} (TPR@FPR=0.001 {figures['tpr1']:.4f}, TPR@FPR=0.005 "
          f"{figures['tpr2']:.4f}, TPR@FPR=0.01 {figures['tpr3']:.4f}), AUC {figures['auc']:.4f}, best step "
          f"{figures['best_iteration']}, fit {figures['fit_seconds']:.1f} s; model saved to {run_dir / 'model'}")
