"""Input and output: checkpoints (orbax), trackers (metrics.jsonl, wandb), plots, the run directory."""
