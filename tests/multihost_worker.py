"""One process of the multi-process training test (tests/test_multihost.py).

  python tests/multihost_worker.py --devices=2 --num_processes=2 --process_id=0 \
      --coordinator=127.0.0.1:PORT --workdir=DIR --encoder=TINY_BERT [--crash_after_step=N]

Sets up `--devices` virtual CPU devices and CPU collectives (gloo), calls
`jax.distributed.initialize` when `--num_processes > 1`, and runs the real trainer
(`lcl_jax.train.trainer.train`) on the package's synthetic dataset. Every state the
trainer checkpoints is also written by process 0 as `<workdir>/../dumps/<tag>_step<k>.npz`
(the parameters, flattened) so the test can compare runs. `--crash_after_step=N`
makes the process stop right after the checkpoint of step N is complete, as a crash
would (the run is left unfinished; re-running resumes it).
"""
import argparse
import json
import os
import pathlib
import sys

TRAIN_CONFIG = dict(dataset="synthetic", objective="lcl", seed=5, epochs=2,
                    max_steps_per_epoch=2, max_train_examples=32, max_eval_examples=16,
                    texts_per_batch=4, eval_batch_size=8, max_length=16, length_buckets=(16,),
                    learning_rate=1e-3, log_every_steps=1, progress_bar=False)


class _Crash(Exception):
  pass


def main() -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--devices", type=int, required=True)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--process_id", type=int, default=0)
  parser.add_argument("--coordinator", default=None)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--encoder", required=True)
  parser.add_argument("--tag", required=True)
  parser.add_argument("--crash_after_step", type=int, default=None)
  args = parser.parse_args()

  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  import jax
  import numpy as np

  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from lcl_jax.train import compilation_cache
  compilation_cache.enable()  # the folder conftest chose ($LCL_JAX_COMPILATION_CACHE)
  if args.num_processes > 1:
    jax.distributed.initialize(coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id)
  import lcl_jax
  from lcl_jax.train import checkpoint as checkpoint_lib
  from lcl_jax.train import trainer
  from lcl_jax.train.config import TrainConfig

  dumps = pathlib.Path(args.workdir).parent / "dumps"
  original_save = checkpoint_lib.RunCheckpoints.save_latest

  def save_latest(self, step, state, progress):
    original_save(self, step, state, progress)
    if jax.process_index() == 0:
      local = jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), state["params"])
      flat = {jax.tree_util.keystr(path): value
              for path, value in jax.tree_util.tree_flatten_with_path(local)[0]}
      dumps.mkdir(parents=True, exist_ok=True)
      np.savez(dumps / f"{args.tag}_step{step}.npz", **flat)
    if step == args.crash_after_step:
      self.wait()
      raise _Crash(step)

  checkpoint_lib.RunCheckpoints.save_latest = save_latest
  config = TrainConfig(encoder=args.encoder, workdir=args.workdir, **TRAIN_CONFIG)
  report = {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "devices": jax.device_count(), "lcl_jax": lcl_jax.__file__}
  try:
    results = trainer.train(config)
    report.update(finished=True, steps=results["steps"], test=results["test"])
  except _Crash as crash:
    report.update(finished=False, crashed_after_step=crash.args[0])
  print("REPORT " + json.dumps(report), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
