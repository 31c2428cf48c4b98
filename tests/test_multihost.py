"""Multi-host training with real processes: 2 processes x 2 CPU devices equal 1 x 4.

`tests/multihost_worker.py` runs the real trainer (LCL, tiny random BERT, the synthetic
dataset) in fresh processes, with `jax.distributed.initialize` and gloo CPU
collectives for the 2-process run. The global batch and the 4-device mesh are the
same in both runs, so the parameters after each epoch must agree (up to the order of
the cross-process sums); the 2-process run then "crashes" after its first epoch's
checkpoint, and one process (4 devices) resumes it from that checkpoint and must end
where the uninterrupted 1-process run ends.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(args, *, processes=1, devices=4):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [
      p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  coordinator = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, str(WORKER), f"--devices={devices}", f"--num_processes={processes}",
       f"--process_id={i}", f"--coordinator={coordinator}", *args],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(processes)]
  reports = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=TIMEOUT_S)
      assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err[-4000:]}"
      lines = [l for l in out.splitlines() if l.startswith("REPORT ")]
      assert lines, f"no report:\n{out[-2000:]}\n{err[-2000:]}"
      reports.append(json.loads(lines[-1][len("REPORT "):]))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  return reports


def _params(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _assert_same_params(got, want, what):
  assert got.keys() == want.keys(), what
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                               err_msg=f"{what}: {name}")


def test_two_processes_equal_one_and_resume_in_one(tiny_bert_dir, tmp_path):
  common = [f"--encoder={tiny_bert_dir}"]
  # 1 process x 4 devices, uninterrupted: the reference (checkpoints at steps 2 and 4).
  [single] = _launch(common + [f"--workdir={tmp_path / 'single'}", "--tag=single"])
  assert single["finished"] and single["steps"] == 4 and single["devices"] == 4
  assert single["lcl_jax"].startswith(str(PROJECT_ROOT))

  # 2 processes x 2 devices, stopped after the checkpoint of epoch 1 (step 2).
  reports = _launch(common + [f"--workdir={tmp_path / 'multi'}", "--tag=multi",
                              "--crash_after_step=2"], processes=2, devices=2)
  assert [(r["process_index"], r["process_count"], r["devices"]) for r in reports] == [
      (0, 2, 4), (1, 2, 4)]
  assert all(r["crashed_after_step"] == 2 for r in reports)
  dumps = tmp_path / "dumps"
  _assert_same_params(_params(dumps / "multi_step2.npz"), _params(dumps / "single_step2.npz"),
                      "2 processes vs 1 process after 2 steps")
  assert not (tmp_path / "multi" / "results.json").exists()

  # One process resumes the 2-process run from its checkpoint and finishes it.
  [resumed] = _launch(common + [f"--workdir={tmp_path / 'multi'}", "--tag=resumed"])
  assert resumed["finished"] and resumed["steps"] == 4
  assert not (dumps / "resumed_step2.npz").exists()  # steps 1-2 were not trained again
  _assert_same_params(_params(dumps / "resumed_step4.npz"), _params(dumps / "single_step4.npz"),
                      "resumed 2-process run vs 1 process after 4 steps")
  moved = _params(dumps / "single_step4.npz")
  before = _params(dumps / "single_step2.npz")
  assert max(float(np.abs(moved[k] - before[k]).max()) for k in moved) > 1e-5
  for split_metric, value in single["test"].items():
    assert resumed["test"][split_metric] == value or abs(resumed["test"][split_metric] - value) < 1e-6
