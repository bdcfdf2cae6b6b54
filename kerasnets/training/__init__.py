"""Training: ``fit`` (the one training loop: recipes, checkpoints, resume, throughput),
``recipes`` (the papers' optimizers, schedules and weight decay), ``distribute``
(``tf.distribute`` strategies) and ``checkpoints`` (the run directory's rules)."""
