"""experiments/train.py runs its objective x seed programs through the sweep's one
in-process orchestrator (`sweep.run_in_process`, issue 21 item 4) with its own policy:
the same programs, log lines, tables, summaries and exit statuses as before.

The binary runs in a subprocess (its absl flags are global) on the embedded default
(SYNTHETIC data, the packaged MiniLM) with the trainer's `train_group` or the sweep's
`run_in_process` replaced by a double, so each command takes seconds; the real trainer
behind the binary runs in test_train.py, test_train_robustness.py and test_use.py.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]

# A results.json as the trainer returns it (the fields the binary's table reads).
_FAKE_RESULTS = textwrap.dedent("""\
    def fake_results(c):
      return {"dataset": c.dataset, "encoder": c.encoder, "seed": c.seed,
              "objective": c.objective, "multilabel": False, "synthetic": True,
              "selection_metric": "accuracy", "best_epoch": 2,
              "validation": {"accuracy": 0.5 + 0.01 * c.seed},
              "test": {"accuracy": 0.6, "weighted_f1": 0.55, "macro_f1": 0.4},
              "sequences_per_second": 12.5, "history": [1, 2]}
    """)


def _run(script: str, args, tmp_path):
  path = tmp_path / "run_binary.py"
  path.write_text("import json, signal, sys\n" + _FAKE_RESULTS + textwrap.dedent(script)
                  + "\nimport experiments.train as t\nfrom lcl_jax.studies import cli\n"
                  "cli.run(t.main)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
  return subprocess.run([sys.executable, str(path), *args], cwd=PROJECT_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_train_binary_hands_its_programs_to_the_sweep(tmp_path):
  """The specs and grouping the binary gives `sweep.run_in_process`: per objective, its
  seeds --runs_per_program at a time, keys <objective>/seed<k>, workdirs
  <workdir>/<objective>/seed<k>; then one table and summary per seed from the results."""
  workdir = tmp_path / "runs"
  calls = tmp_path / "calls.json"
  proc = _run(f"""
      from lcl_jax.studies import sweep
      def recording_run_in_process(groups, outcome, *, policy=None):
        record = {{"policy": type(policy).__name__, "groups": [
            [[s.key, s.config.workdir, s.config.objective, s.config.seed] for s in g]
            for g in groups]}}
        open({str(calls)!r}, "w").write(json.dumps(record))
        for group in groups:
          for spec in group:
            outcome.results[spec.key] = fake_results(spec.config)
      sweep.run_in_process = recording_run_in_process
      from lcl_jax.train import trainer
      def not_through_the_sweep(configs):
        sys.exit("trainer.train_group was called outside sweep.run_in_process")
      trainer.train_group = not_through_the_sweep
      """, ["--objective=ce,lcl", "--seeds=0-2", "--runs_per_program=2",
            f"--workdir={workdir}"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(calls.read_text())
  assert record["policy"] == "_ExitOnFailure"
  run = lambda o, s: [f"{o}/seed{s}", str(workdir / o / f"seed{s}"), o, s]
  assert record["groups"] == [[run("ce", 0), run("ce", 1)], [run("ce", 2)],
                              [run("lcl", 0), run("lcl", 1)], [run("lcl", 2)]]
  for seed in (0, 1, 2):
    assert f"synthetic (encoder minilm, seed {seed})" in proc.stdout
    summary = json.loads((workdir / f"summary_seed{seed}.json").read_text())
    assert [(r["objective"], r["seed"]) for r in summary] == [("ce", seed), ("lcl", seed)]
    assert "history" not in summary[0]
    assert (workdir / f"summary_seed{seed}.md").read_text().splitlines()[0].endswith(
        f"seed {seed})")
  assert f"--run={workdir / 'lcl' / 'seed2'}" in proc.stdout


_FAILING_TRAINER = """
    from lcl_jax.train import checkpoint, trainer
    MODE = sys.argv.pop(1)
    def train_group(configs):
      print("train_group", [c.workdir for c in configs], file=sys.stderr)
      if configs[0].objective == "lcl":
        if MODE == "nonfinite":
          raise trainer.NonFiniteLossError("the loss became NaN at step 3")
        if MODE == "in_use":
          raise checkpoint.WorkdirInUseError("in use by pid 12345")
        if MODE == "sigterm":
          raise trainer.TrainingInterrupted("SIGTERM at step 5: state saved",
                                            signum=signal.SIGTERM)
        if MODE == "ctrl_c":
          raise KeyboardInterrupt("second Ctrl-C")
      return [fake_results(c) for c in configs]
    trainer.train_group = train_group
    """


@pytest.mark.parametrize("mode, status, message", [
    ("ok", 0, "| lcl "),
    ("nonfinite", 1, "error: the loss became NaN at step 3"),
    ("in_use", 1, "error: in use by pid 12345"),
    ("sigterm", 143, "SIGTERM at step 5: state saved"),
    ("ctrl_c", 130, "second Ctrl-C; re-run the same command to resume from the last "
                    "checkpoint"),
])
def test_train_binary_exit_statuses_through_the_sweep(tmp_path, mode, status, message):
  """The real `sweep.run_in_process` with the binary's policy: each program announced in
  the console and <workdir>/train.log; a failure ends the command with its status (the
  runs after it are not started, no summary), as before the binary used the sweep."""
  workdir = tmp_path / "runs"
  proc = _run(_FAILING_TRAINER, [mode, "--objective=ce,lcl,scl", f"--workdir={workdir}"],
              tmp_path)
  assert proc.returncode == status, proc.stderr[-3000:]
  assert message in proc.stdout + proc.stderr
  assert "Traceback" not in proc.stderr
  announced = [f"[{i}/3] {o} on synthetic (encoder minilm, seed 0, 3 epochs) -> "
               f"{workdir / o / 'seed0'}" for i, o in ((1, "ce"), (2, "lcl"), (3, "scl"))]
  log_text = (workdir / "train.log").read_text()
  started = announced if mode == "ok" else announced[:2]
  for line in started:
    assert line in proc.stderr and line in log_text
  trained = [line for line in proc.stderr.splitlines() if line.startswith("train_group")]
  assert len(trained) == len(started)
  assert (workdir / "summary_seed0.md").exists() == (mode == "ok")
