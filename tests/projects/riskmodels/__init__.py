"""A port of the shape of a public Luigi project: SBunce92/Luigi_ML_Pipeline on GitHub
(``TrainModels.py``, ``Batch_Config.cfg``), a grid / random search over classifier
hyperparameters for a credit-default label, driven by batch configuration files that its users
switch between (``LUIGI_CONFIG_PATH=LR_Batch.cfg luigi ...``).

Kept from it: one module of tasks (``TrainModels``) run from the project's folder with relative
paths; an external task with three raw exports; a merge task with three outputs (feature
matrices per data set); one classifier task per grid point, its parameters a ``DictParameter``
and its output named after them; a batch task that expands a parameter-space ``DictParameter``
(``linspace``, ``logspace``, ``defined_list``, seeded random-search fraction); a root task whose
``batch_list`` comes from the configuration file; helpers in modules of their own.

Converted, as a port does: base classes and targets are luigi_repro's; the matrices are Parquet
instead of CSV; the figure becomes a report folder of its four panels as tables; the shared
``logs.csv`` every classifier appended to becomes the root task's leaderboard (an appended log
cannot be recorded); sklearn's models are small numpy ones. Added: the training set as a
parameter (the exports are numbered ``train1-...``) and a feature-scaling variant read from the
configuration, so that two configurations write to the same paths.

Written for these tests; no code is copied from the original.
"""
