"""The absl binaries (`python -m experiments.<name>`): train.py (one dataset, the embedded
default without flags), the paper's tables and figures (table*.py, figure2_entropy.py),
the seeds' studies (goemotions_*.py, reimplementation_study.py), hparam_search.py,
predict.py and evaluate.py. Each is thin: its machinery is lcl_jax.studies.<same name>
where it has one, and every main runs under `lcl_jax.studies.cli.run` (the error
contract: a bad flag or file prints one `error: ...` line and exits with status 2)."""
