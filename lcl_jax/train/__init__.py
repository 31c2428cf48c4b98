"""Fine-tuning: the one training loop and what it is built from.

* `trainer` -- `train`, `train_group`, `preflight` and the loop (`_Loop`); re-exports
  the names callers use from the modules below.
* `program` -- one run (`SingleRun`, jit/pmap) or S runs in one vmapped program
  (`RunGroup`), a program's runs (`Run`), their data and networks.
* `resume` -- resume checks, restoring a program's runs, stop signals, the errors that
  end a run (`TrainingInterrupted`, `ConfigMismatchError`, `NonFiniteLossError`).
* `evaluation` -- logits -> probabilities -> metrics; one split's `evaluate`; the
  multi-label threshold decisions.
* `outputs` -- metrics.jsonl / TensorBoard, config.json, results.json, plots, Hugging Face
  export, the embedding-mixing evaluation of a finished run.
* `config` (`TrainConfig`: one `setting(...)` per field) and `run_flags` (the absl flags
  generated from it); `objectives` (networks and loss per --objective), `steps` (the
  jitted train / eval steps), `optim`, `parallel`, `checkpoint`, `data_pipeline`,
  `mixing`, `plots`, `model_card`, `compilation_cache`, `host_memory`.

Nothing here is imported by ``import lcl_jax`` (the top level stays the pure losses).
"""
