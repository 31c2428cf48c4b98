"""A sweep's worker subprocess: runs (or resumes) one training job.

  python -m lcl_jax.studies.worker '<TrainConfig as JSON>'
  python -m lcl_jax.studies.worker '[<TrainConfig>, ...]'   # one program (train_group)

Started by :func:`lcl_jax.studies.sweep.run_sweep` with `parallel_runs > 1`, in an
environment restricted to its device slot. Exit status: 0 when results.json was
written, :data:`~lcl_jax.studies.sweep.INTERRUPTED_EXIT_CODE` (143) after a SIGTERM
(state saved; the next sweep resumes it), 1 with a traceback on any error.
"""
from __future__ import annotations

import json
import logging
import os
import sys


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print(f"usage: python -m lcl_jax.studies.worker '<TrainConfig JSON or a list>' (got {argv[1:]})",
          file=sys.stderr)
    return 2
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
  logging.basicConfig(level=logging.WARNING,
                      format="%(asctime)s %(name)s %(levelname)s %(message)s")
  logging.getLogger("lcl_jax").setLevel(logging.INFO)
  from lcl_jax.train import compilation_cache, host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reuse_freed_memory()  # before XLA starts its threads
  compilation_cache.enable()  # the sweep's folder ($LCL_JAX_COMPILATION_CACHE)
  from lcl_jax.studies.sweep import INTERRUPTED_EXIT_CODE  # pylint: disable=g-import-not-at-top
  from lcl_jax.train import trainer  # pylint: disable=g-import-not-at-top
  from lcl_jax.train.config import TrainConfig  # pylint: disable=g-import-not-at-top

  payload = json.loads(argv[1])
  try:
    # A list: the runs of one program (--runs_per_program); a dict: one run.
    configs = payload if isinstance(payload, list) else [payload]
    trainer.train_group([TrainConfig.from_dict(c) for c in configs])
  except trainer.TrainingInterrupted as e:
    print(str(e), file=sys.stderr)
    return INTERRUPTED_EXIT_CODE
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
