"""Optuna sweeps driven from run.py: one study per model family, trials recorded on the leaderboard."""
