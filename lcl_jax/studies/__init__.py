"""Reproducing the LCL paper's tables and figures: the machinery behind `experiments/`.

* :mod:`~lcl_jax.studies.paper_numbers` -- every number of the paper the reports
  print beside ours, and the paper's experimental grid (datasets, methods, seeds).
* :mod:`~lcl_jax.studies.sweep` -- run specifications, the on-disk layout of a
  sweep, skipping finished runs, resuming interrupted ones, running several at once
  (worker subprocesses, each restricted to its own devices).
* :mod:`~lcl_jax.studies.worker` -- the worker subprocess (one run).
* :mod:`~lcl_jax.studies.stats` -- mean / sd over seeds and the t-tests.
* :mod:`~lcl_jax.studies.table3_class_subsets` -- Table 3's data-driven hard-subset selection.
* :mod:`~lcl_jax.studies.figure2_entropy` -- Figure 2's top-k entropy curves and plot.
* :mod:`~lcl_jax.studies.report` -- report.md, results.json and results.csv.
* :mod:`~lcl_jax.studies.goemotions_multilabel` -- the GoEmotions-28 studies of seeds 000 and
  003: rows, decision-rule columns, Tables 5/6 and the t-SNE / per-class F1 figures.
* :mod:`~lcl_jax.studies.cli` -- the absl flags every experiment binary shares.

Nothing here initialises a JAX backend in the sweep's parent process (it must not claim
the accelerators, or their memory, that its worker subprocesses need).
"""
