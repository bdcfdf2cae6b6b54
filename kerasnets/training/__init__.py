"""Training: ``fit`` (the one training loop: recipes, checkpoints, resume, throughput),
``recipes`` (the papers' optimizers, schedules and weight decay), ``distribute``
(``tf.distribute`` strategies), ``checkpoints`` (the run directory's rules) and ``early_exit``
(the joint loss of multi-exit models)."""
