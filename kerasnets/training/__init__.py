"""Training: ``fit`` (the one training loop: recipes, checkpoints, resume, distribution
strategies, throughput) and ``recipes`` (the papers' optimizers, schedules and weight decay)."""
