"""Training configuration and the paper's per-dataset presets.

The presets are the paper's Appendix B / the authors' released `config.py`:
learning rate 2e-5 (ISEAR 3e-5), alpha 0.5 (GoEmotions 0.1), temperature 0.3
(SST-5 0.1), batch 10 texts + 10 augmented views, AdamW (0.9, 0.999, 1e-6),
weight decay 0.01 (none on biases and LayerNorm), linear decay to 0 without
warm-up, gradient clipping at global norm 1.0 per network, 5 epochs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Sequence

# Light imports only (this module is read while binaries parse flags): the names shared
# with their owners (lcl_jax.choices), the objective registry and the tiled losses (JAX
# and the pure losses, which `import lcl_jax` loads anyway); no Flax, data or optax.
from lcl_jax.choices import (ADAM_EPSILON_MODES, BASELINE_ENCODERS,  # noqa: F401
                             COARSE_GROUPINGS, CONTRASTIVE_REDUCTIONS, DEFAULT_LENGTH_BUCKETS,
                             FEATURE_POOLINGS, PRIMARY_HEADS)
from lcl_jax.losses import api
from lcl_jax.train.objective_specs import OBJECTIVE_SPECS

# [CLS] + one token + [SEP]: the shortest input a classifier can read.
MIN_MAX_LENGTH = 3
OBJECTIVES = tuple(OBJECTIVE_SPECS)  # the objective registry's names
# Their learning rate unless given: Adam 1e-3 (seed 000 §5.1).
BASELINE_LEARNING_RATE = 1e-3
PARALLELISM = ("jit", "pmap")
CONTRASTIVE_IMPLS = api.IMPLEMENTATIONS  # ('auto', 'dense', 'tiled', 'ring')
MATMUL_PRECISIONS = ("highest", "default")
BASELINE_VIEWS = ("paired", "texts")
LCL_VIEWS = ("paired", "texts")
HEAD_INITS = ("normal_0.02", "torch_default")
LR_SCHEDULES = ("linear", "constant")
THRESHOLD_FITS = ("validation", "train", "none")
KEEP_CHECKPOINTS = ("best", "all")
DTYPES = ("float32", "bfloat16")
EARLY_STOPPING_ON = ("metric", "loss")
# Seed 004's auxiliary tasks (the coarse GoEmotions labelings, plus "none") and
# the schedules of T in L = T * L_main + (1 - T) * L_aux (lcl_jax.train.objectives.aux_weight).
AUX_TASKS = ("none", *COARSE_GROUPINGS)
AUX_SCHEDULES = ("linear", "cosine")
# The datasets the auxiliary tasks are defined for (the 28 GoEmotions labels, multi-hot).
AUX_DATASETS = ("goemotions_multilabel",)
# Seed 004 Section 3.4: inference-time embedding mixing (lcl_jax.train.mixing).
EMBED_MIXES = ("none", "train", "paraphrase", "t5")
EMBED_MIX_SIMILARITIES = ("cosine", "bertscore")

# Dataset-name prefix -> preset overrides (longest matching prefix wins).
_PRESETS: dict[str, dict[str, float]] = {
    "": {"learning_rate": 2e-5, "alpha": 0.5, "temperature": 0.3},
    "isear": {"learning_rate": 3e-5},
    "goemotions": {"alpha": 0.1},
    "sst5": {"temperature": 0.1},
    # Not a paper dataset: the embedded default's 360 synthetic training texts give only
    # 36 steps an epoch, too few for the paper's 2e-5 to move MiniLM off chance level.
    "synthetic": {"learning_rate": 1e-4},
}


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Range:
  """The numbers a numeric setting accepts (`setting(bounds=...)`): integers (`integer`)
  or finite reals from `low` to `high`, each end included unless open (`low_open`,
  `high_open`). `None` is accepted too where the field's default is None (unset).
  `note` explains the bounds in the error message."""
  low: float = -math.inf
  high: float = math.inf
  low_open: bool = False
  high_open: bool = False
  integer: bool = False
  note: str = ""

  def contains(self, value: Any) -> bool:
    """Whether `value` is a number of the right kind inside the bounds."""
    if not (_is_int(value) if self.integer else _is_real(value) and math.isfinite(value)):
      return False
    above = value > self.low if self.low_open else value >= self.low
    below = value < self.high if self.high_open else value <= self.high
    return above and below

  def describe(self) -> str:
    """E.g. 'an integer >= 1', 'a finite number > 0', 'a finite number in [0, 1)'."""
    kind = "an integer" if self.integer else "a finite number"
    low = f"{self.low:g}"
    if math.isinf(self.high):
      text = f"{kind} {'>' if self.low_open else '>='} {low}"
    else:
      high = "2**31 - 1" if self.high == 2**31 - 1 else f"{self.high:g}"
      text = (f"{kind} in {'(' if self.low_open else '['}{low}, {high}"
              f"{')' if self.high_open else ']'}")
    return f"{text} ({self.note})" if self.note else text

  def outside(self) -> list[Any]:
    """Values this range refuses, for the robustness test: each finite bound's nearest
    outsider (an open bound itself), a non-integer inside an integer range, NaN and
    infinity for a real one."""
    step = 1 if self.integer else 0.5
    values: list[Any] = []
    if math.isfinite(self.low):
      values.append(self.low if self.low_open else self.low - step)
    if math.isfinite(self.high):
      values.append(self.high if self.high_open else self.high + step)
    if self.integer:
      values.append((self.low if math.isfinite(self.low) else 0) + 1.5)
    else:
      values += [float("nan"), float("inf")]
    return values


POSITIVE = Range(0.0, low_open=True)
UNIT = Range(0.0, 1.0)
AT_LEAST_ONE = Range(1, integer=True)
AT_LEAST_ZERO = Range(0, integer=True)


# `setting(flag_default=BINARY_DEFAULT)`: each binary gives the flag's default (--encoder).
BINARY_DEFAULT = object()
_FIELD_DEFAULT = object()


def setting(default: Any, help: str, *, flag: str | None,  # pylint: disable=redefined-builtin
            choices: tuple[str, ...] | None = None, bounds: Range | None = None,
            flag_default: Any = _FIELD_DEFAULT, **flag_options: Any) -> Any:
  """A `TrainConfig` field and everything said about it in one place: its default, the
  help of its absl flag, the flag's kind ('string', 'integer', 'float', 'bool', 'enum',
  'list'; None: no run flag, each binary sets the field itself), its choices or its
  numeric `bounds` (a `Range`; both checked by `validate`, one loop each) and, where
  they differ from the field's, the flag's default and options.
  `lcl_jax.train.run_flags` defines the flags and maps them to the config from these."""
  return dataclasses.field(default=default, metadata={
      "help": help, "flag": flag, "choices": choices, "bounds": bounds,
      "flag_options": flag_options,
      "flag_default": default if flag_default is _FIELD_DEFAULT else flag_default})


def settings() -> tuple[dataclasses.Field, ...]:
  """The fields of `TrainConfig` (each made by `setting`)."""
  return dataclasses.fields(TrainConfig)


def dataset_preset(dataset: str) -> dict[str, float]:
  """The paper's learning rate, alpha and temperature for `dataset`."""
  preset = dict(_PRESETS[""])
  for prefix in sorted(_PRESETS, key=len):
    if prefix and dataset.startswith(prefix):
      preset.update(_PRESETS[prefix])
  return preset


@dataclasses.dataclass
class TrainConfig:
  """Everything one fine-tuning run depends on (saved with the run as config.json).

  `None` for learning_rate / alpha / temperature means "the paper's preset for the
  dataset" (see `dataset_preset`); `resolved()` fills them in.
  """
  dataset: str = setting("synthetic", "Dataset of the run (each binary's --dataset / --datasets).",
      flag=None)
  objective: str = setting("lcl", "Training objective (each binary's --objective / --objectives).",
      flag=None, choices=OBJECTIVES)
  encoder: str = setting("minilm",
      ("Encoder checkpoint: a hub id, a local Hugging Face checkpoint folder, 'minilm' "
       "(the packaged all-MiniLM-L6-v2) or a baseline (bilstm, gru, rnn, charcnn); each "
       "binary gives its default and help."),
      flag="string", flag_default=BINARY_DEFAULT)
  # None: same checkpoint as `encoder`.
  weighting_encoder: str | None = setting(None,
      "Checkpoint of LCL's weighting network (default: --encoder).",
      flag="string")
  data_dir: str | None = setting(None, "Folder with the release files (default $LCL_DATA_DIR).",
      flag="string")
  workdir: str = setting("runs/default",
      "The run's folder (each binary derives it from its --workdir).",
      flag=None)
  seed: int = setting(0, "Seed of the run: data order, init and dropout (--seed / --seeds).",
      bounds=Range(0, 2**31 - 1, high_open=True, integer=True), flag=None)
  # a user class subset (Empathetic Dialogues)
  classes: tuple[str, ...] | None = setting(None,
      "A class subset (--classes of experiments/train.py).",
      flag=None)

  # Optimisation (paper / release defaults).
  learning_rate: float | None = setting(None, "Peak learning rate (default: per-dataset preset).",
      bounds=POSITIVE, flag="float")
  alpha: float | None = setting(None, "Classification-term weight (default: preset).",
      bounds=UNIT, flag="float")
  temperature: float | None = setting(None, "Contrastive temperature tau (default: preset).",
      bounds=POSITIVE, flag="float")
  # Contrastive features of SCL/LCL: 'cls' (the paper) or 'mean' over non-padding
  # tokens (seed 001's re-implementation).
  feature_pooling: str = setting("cls",
      ("Contrastive features of SCL/LCL: the [CLS] state (the paper) or the mean over "
       "non-padding tokens (seed 001)."),
      flag="enum", choices=FEATURE_POOLINGS)
  # A local GloVe text file initialising the word embeddings of the bilstm/gru/rnn
  # baselines (seed 000: glove.twitter.27B.200d.txt); None: trained from scratch.
  glove_path: str | None = setting(None,
      ("GloVe text file for the word embeddings of --encoder=bilstm/gru/rnn (seed 000: "
       "glove.twitter.27B.200d.txt); default: trained from scratch."),
      flag="string")
  epochs: int = setting(5,
      ("Epochs per run. Default: 5 (the paper's) for every paper dataset; 3 for the "
       "synthetic built-in dataset of experiments.train; 1 with --smoke."),
      bounds=AT_LEAST_ONE, flag="integer", flag_default=None)
  # None: train all epochs (the release); else early stop.
  patience: int | None = setting(None, "Early-stopping patience in epochs (default: none).",
      bounds=AT_LEAST_ONE, flag="integer")
  # What `patience` watches: "metric" (the validation selection metric, accuracy or
  # macro F1) or "loss" (the validation cross-entropy; seed 000's biLSTM schedule).
  early_stopping_on: str = setting("metric",
      ("What --patience watches: the validation accuracy / macro F1, or the validation "
       "loss (seed 000's biLSTM)."),
      flag="enum", choices=EARLY_STOPPING_ON)
  texts_per_batch: int = setting(10, "K: texts per batch (plus K augmented views).",
      bounds=AT_LEAST_ONE, flag="integer")
  weight_decay: float = setting(0.01,
      ("AdamW decoupled weight decay (none on biases and LayerNorm weights; the "
       "release's 0.01)."),
      bounds=Range(0.0), flag="float")
  adam_b1: float = setting(0.9, "AdamW beta1, in [0, 1) (the release's 0.9).",
      bounds=Range(0.0, 1.0, high_open=True), flag="float")
  adam_b2: float = setting(0.999, "AdamW beta2, in [0, 1) (the release's 0.999).",
      bounds=Range(0.0, 1.0, high_open=True), flag="float")
  adam_eps: float = setting(1e-6,
      "AdamW epsilon, > 0 (the release's 1e-6; see --adam_epsilon_mode).",
      bounds=POSITIVE, flag="float")
  clip_norm: float = setting(1.0,
      "Gradient clipping: global norm per network, > 0 (the release's 1.0).",
      bounds=POSITIVE, flag="float")
  # 'linear': decay to 0 over the run (the paper); 'constant': a fixed rate (seeds 000, 003).
  lr_schedule: str = setting("linear",
      "Learning-rate schedule: linear decay to 0 (the paper) or constant.",
      flag="enum", choices=LR_SCHEDULES)

  # Φ's classifier head (ce / scl / lcl): 'paper' (the LCL release: [CLS] -> new dense ->
  # dropout -> ReLU -> dense -> dropout on the logits; the paper's reproductions), 'hf'
  # (the checkpoint's transformers *ForSequenceClassification head: BERT's pre-trained
  # pooler -> dropout -> linear; what a plain transformers loop trains, and ~2.6 points
  # better on EmoInt with MiniLM, BUILD_NOTES "Parity with PyTorch"), 'direct' (seed 000:
  # dense + tanh -> dropout -> dense), 'dense1' / 'dense2' (seed 003's DenseLayer(1)/(2)).
  head: str = setting("paper",
      ("Φ's head: the LCL release's (paper: new dense -> dropout -> ReLU -> dense -> "
       "dropout on the logits; the paper's reproductions), the checkpoint's transformers "
       "*ForSequenceClassification head (hf: for BERT the pre-trained pooler -> dropout "
       "-> linear; what a plain transformers loop trains, and better on your own data), "
       "seed 000's direct head (dense + tanh, dropout 0.3), seed 003's DenseLayer(1)/(2) "
       "(dense1/dense2)."),
      flag="enum", choices=PRIMARY_HEADS)
  # None: the head's default (0.1 / 0.3 / 0)
  classifier_dropout: float | None = setting(None, "Head dropout p (default: the head's own).",
      bounds=Range(0.0, 1.0, high_open=True), flag="float")

  # Two-stage training (seed 003): after `epochs`, `head_epochs` more with every encoder
  # frozen and the heads re-initialised, at `head_learning_rate` (None: learning_rate).
  head_epochs: int = setting(0,
      ("Two-stage training: epochs of stage 2 (encoders frozen, heads re-initialised) "
       "after --epochs; 0 = one stage."),
      bounds=AT_LEAST_ZERO, flag="integer")
  head_learning_rate: float | None = setting(None,
      "Stage-2 learning rate (default: --learning_rate).",
      bounds=POSITIVE, flag="float")

  # Data.
  max_length: int = setting(128, "Token truncation length.",
      bounds=Range(MIN_MAX_LENGTH, integer=True, note="[CLS], at least one token and [SEP]"),
      flag="integer")
  # Static padded lengths (capped at max_length): lcl_jax.data.batching.DEFAULT_BUCKETS
  # (written once in lcl_jax.choices), every 8 tokens up to 64, then coarser; see there.
  length_buckets: tuple[int, ...] = setting(DEFAULT_LENGTH_BUCKETS,
      ("Static padded lengths (those <= --max_length are used; one compiled train step per "
       "length that occurs): by default every 8 tokens up to 64, every 16 up to 128, every "
       "32 up to 256, every 64 up to 512. Fewer lengths compile less but pad more."),
      flag="list")
  eval_batch_size: int = setting(64, "Rows per evaluation batch.",
      bounds=AT_LEAST_ONE, flag="integer")
  augment_p: float = setting(0.3,
      "Probability of changing each word when augmenting the views, in [0, 1].",
      bounds=UNIT, flag="float")
  fresh_views_per_epoch: bool = setting(False, "Re-augment the training texts every epoch.",
      flag="bool")
  # smoke runs / tests: a deterministic subset
  max_train_examples: int | None = setting(None, "Use a fixed random subset of the train split.",
      bounds=AT_LEAST_ONE, flag="integer")
  max_eval_examples: int | None = setting(None,
      ("Use fixed random subsets of validation AND test (smoke runs); results.json "
       "('test_subset') and the results table then say that the test metrics are on a "
       "subset."),
      bounds=AT_LEAST_ONE, flag="integer")
  max_steps_per_epoch: int | None = setting(None, "Cap on training steps per epoch.",
      bounds=AT_LEAST_ONE, flag="integer")
  # Seed 003's data expansion: this many extra training rows, each two training texts
  # joined by a space with the union of their labels (multi-label datasets only).
  concat_expansion: int = setting(0,
      ("Multi-label: extra training rows made by concatenating two training texts (union "
       "of labels), per seed."),
      bounds=AT_LEAST_ZERO, flag="integer")

  # Multi-label (GoEmotions-28): per-class thresholds on sigmoid probabilities.
  thresholds: tuple[float, ...] | float = setting(0.5,
      "Multi-label decision threshold: one value or one per class (comma list).",
      flag="string")
  # Per-class thresholds maximising each class's F1, fitted after training on the best
  # epoch's predictions of this split ('validation', 'train' as seed 003, or 'none') and
  # applied to test, beside the global `thresholds`.
  threshold_fit: str = setting("validation",
      ("Multi-label: split on which per-class thresholds (max F1 per class) are fitted "
       "and then applied to test, beside --thresholds."),
      flag="enum", choices=THRESHOLD_FITS)

  # Compute.
  dtype: str = setting("float32", "Compute dtype of the encoders.", flag="enum", choices=DTYPES)
  remat: bool = setting(False, "Rematerialise each transformer layer (saves memory).", flag="bool")
  parallelism: str = setting("jit", "Data-parallel implementation.",
      flag="enum", choices=PARALLELISM)
  # measured: not slower than rbg (BUILD_NOTES)
  dropout_rng_impl: str = setting("threefry2x32",
      "jax.random implementation of the dropout keys (threefry2x32, rbg, unsafe_rbg).",
      flag="string")
  checkpoint_every_steps: int = setting(200, "Steps between mid-epoch checkpoints.",
      bounds=AT_LEAST_ONE, flag="integer")
  # also write the best networks as Hugging Face checkpoints
  export_hf: bool = setting(False,
      ("Also write the best-validation networks as Hugging Face checkpoints "
       "(<run>/export/<network>, safetensors, tokenizer and a model card README.md; "
       "loadable by transformers)."),
      flag="bool")
  # Φ's test/validation [CLS] vectors in predictions/*.npz
  save_features: bool = setting(False,
      "Also save Φ's validation/test [CLS] vectors in predictions/best_*.npz.",
      flag="bool")
  # What a finished run keeps: "best" drops the latest-state checkpoint (optimiser state,
  # ~3x the params) once results.json is written; "all" keeps it.
  keep_checkpoints: str = setting("best",
      ("What a finished run keeps on disk: 'best' deletes the latest-state checkpoint "
       "(parameters + optimiser state, only needed to resume) once results.json is "
       "written, keeping best/ (the best-validation parameters); 'all' keeps both."),
      flag="enum", choices=KEEP_CHECKPOINTS)
  log_every_steps: int = setting(10, "Steps between two training-metric records (and host syncs).",
      bounds=AT_LEAST_ONE, flag="integer")
  progress_bar: bool = setting(True, "Show a tqdm progress bar (in-process runs).", flag="bool")
  # Also evaluate validation and test every this many steps (0: only at epoch ends),
  # written to metrics.jsonl as {"kind": "step_eval", "step", "eval": {"validation",
  # "test"}} (seed 004's Fig. 5: test macro F1 every 1000 steps). Model selection,
  # early stopping and the saved predictions stay per epoch.
  eval_every_steps: int = setting(0,
      ("Also evaluate validation and test every N training steps, recorded in "
       "metrics.jsonl (kind 'step_eval'); 0 = at epoch ends only. Model selection stays "
       "per epoch."),
      bounds=Range(0, integer=True, note="0: evaluate at epoch ends only"), flag="integer")

  # Fidelity options (issue 14): where the authors' release and this package differ,
  # or the paper does not say, both readings can be run. Defaults keep the behaviour
  # of the runs recorded in BUILD_NOTES.
  # What the baselines (ce, scl, bert_ce) train on: 'paired' = K texts + their K
  # augmented views (the unmerged third-party train_baseline.py of the release repo),
  # 'texts' = the K texts only. LCL's rows: `lcl_views`.
  baseline_views: str = setting("paired",
      ("What the CE/SCL baselines train on: 'paired' (K texts + K augmented views) or "
       "'texts' (the K texts only). LCL: see --lcl_views."),
      flag="enum", choices=BASELINE_VIEWS)
  # What LCL trains on (issue 18): 'paired' = K texts + their K augmented views (the
  # release's train.py; the paper), 'texts' = the K texts alone (seed 001, Sec. 3.4: LCL
  # over I = {1, ..., K}, no augmentation).
  lcl_views: str = setting("paired",
      ("What LCL trains on: 'paired' (K texts + K augmented views; the paper and its "
       "release) or 'texts' (the K texts only; seed 001's LCL)."),
      flag="enum", choices=LCL_VIEWS)
  # The SCL/LCL term over its anchors (issue 18; lcl_jax.losses `reduction`): 'mean'
  # (the paper, the release) or 'sum' (seed 001's formulas, sum_{i=1}^K: N times the
  # mean for N anchors with a positive, as if (1 - alpha) were N times larger).
  contrastive_reduction: str = setting("mean",
      ("SCL/LCL term over its anchors: 'mean' (the paper and its release) or 'sum' (seed "
       "001's formulas: N x the mean for the N anchors with a positive, i.e. the "
       "contrastive weight 1 - alpha scaled by N)."),
      flag="enum", choices=CONTRASTIVE_REDUCTIONS)
  # AdamW rule: 'optax' (optax.adamw = torch.optim.AdamW) or 'legacy_hf' (the
  # release's transformers.AdamW: eps on the uncorrected sqrt(v)); see train/optim.py.
  adam_epsilon_mode: str = setting("optax",
      ("AdamW rule: 'optax' (optax.adamw) or 'legacy_hf' (the release's "
       "transformers.AdamW: eps added to the uncorrected sqrt(v))."),
      flag="enum", choices=ADAM_EPSILON_MODES)
  # Seed of the augmented views: None = each run's `seed` (views differ per seed);
  # an int = the same views for every seed (the release makes one set of views).
  view_seed: int | None = setting(None,
      ("Seed of the augmented views: unset = each run's seed; an int = the same views "
       "for every seed (as the release)."),
      bounds=AT_LEAST_ZERO, flag="integer", lower_bound=0)
  # Init of the primary network's new head layers (pooler_fc, label): 'normal_0.02'
  # (transformers' _init_weights, normal(initializer_range = 0.02), zero bias) or
  # 'torch_default' (torch.nn.Linear's default, what the release's Φ head gets).
  head_init: str = setting("normal_0.02",
      ("Init of the primary network's head layers: 'normal_0.02' or 'torch_default' "
       "(torch.nn.Linear's default, as the release)."),
      flag="enum", choices=HEAD_INITS)

  # Scale (issue 12).
  # Contrastive term: 'dense' [B, B] losses, 'tiled' (column tiles, memory O(B * tile)),
  # 'ring' (tiles passed around the devices of the data mesh, `jit` parallelism), or
  # 'auto' (dense below `contrastive_auto_threshold` global rows, else ring on >1 device
  # / tiled on one). All give the same values and gradients; the rule is the public
  # losses' (lcl_jax.losses.api.choose_impl, via api.Contrastive in the trainer).
  contrastive_impl: str = setting("auto",
      ("Contrastive term: dense [B, B]; tiled (memory O(B * tile)); ring over the "
       "devices (jit); auto = dense below --contrastive_auto_threshold rows."),
      flag="enum", choices=CONTRASTIVE_IMPLS)
  contrastive_tile_size: int = setting(512, "Columns per tile of the tiled/ring loss.",
      bounds=AT_LEAST_ONE, flag="integer")
  contrastive_auto_threshold: int = setting(api.AUTO_THRESHOLD,
      "Global batch rows from which --contrastive_impl=auto tiles.",
      bounds=AT_LEAST_ONE, flag="integer")
  # Gradient caching (issue 19; Gao et al. 2021, "Scaling Deep Contrastive Learning Batch
  # Size under Memory Limited Setup"): the networks run over the step's rows N at a time
  # (outputs first, then each chunk's backward with the cached output gradients), so the
  # global batch is bounded by the loss's memory, not by one forward/backward of every
  # row. Same loss and gradients as the plain step (to float32 summation order) with
  # each row's dropout masks from its own key; the rows are padded to a multiple of N.
  gradient_cache_chunk_size: int = setting(0,
      ("Gradient caching: run the networks over N global rows at a time (one chunk's "
       "activations in memory, one extra forward); 0 = off. A multiple of the device "
       "count; the step's rows are padded to a multiple of it."),
      bounds=AT_LEAST_ZERO, flag="integer")
  # jax.default_matmul_precision around the train and eval steps: 'highest' keeps
  # float32 matmuls float32 on GPUs that would use TF32 (and TPUs that would use bf16
  # passes); 'default' lets the backend choose (faster). No effect on CPU.
  matmul_precision: str = setting("highest",
      ("jax.default_matmul_precision of the steps: highest = true float32 (no TF32/bf16 "
       "passes on GPU/TPU); default = the backend's fastest."),
      flag="enum", choices=MATMUL_PRECISIONS)
  # Peak FLOP/s of one device for the MFU of metrics.jsonl / results.json (issue 19):
  # unset = the vendor figure of lcl_jax.train.throughput.PEAK_FLOPS for the device kind,
  # --dtype and --matmul_precision; a CPU or an unlisted device has none (MFU null).
  peak_flops: float | None = setting(None,
      ("Peak FLOP/s of one device for the logged MFU (default: the vendor figure for the "
       "device kind, dtype and matmul precision; none on CPU, so MFU is null)."),
      bounds=POSITIVE, flag="float")

  # Seed 004's auxiliary task (issue 10): a second head on Φ's encoder (hard parameter
  # sharing) predicting the coarse 'ekman' or 'sentiment' groups (+ neutral, multi-hot,
  # BCE); the loss is T * L_main + (1 - T) * L_aux with T going from `aux_weight_start`
  # (first step) to `aux_weight_end` (last step of --epochs) along `aux_schedule`.
  aux_task: str = setting("none",
      ("GoEmotions-28 only: a second head on the encoder predicting the coarse groups (+ "
       "neutral) of the release's ekman_mapping.json / sentiment_dict.json; loss T * "
       "L_main + (1 - T) * L_aux."),
      flag="enum", choices=AUX_TASKS)
  aux_weight_start: float = setting(0.8,
      "T (the main loss's weight) at the first step (seed 004: 0.8).",
      bounds=Range(0.0, 1.0, note="T, the main task's weight"), flag="float")
  aux_weight_end: float = setting(1.0,
      ("T at the last step of --epochs (>= --aux_weight_start; equal values keep T "
       "constant)."),
      bounds=Range(0.0, 1.0, note="T, the main task's weight"), flag="float")
  aux_schedule: str = setting("linear",
      ("How T moves from start to end: linear in the step, or a half-cosine ramp (flat "
       "at both ends)."),
      flag="enum", choices=AUX_SCHEDULES)

  # Label-embedding attention (seed 004 Section 3.3; issue 10): every row is [CLS] + the
  # label names' word pieces + [SEP] + the first `label_text_tokens` text pieces + [SEP]
  # (lcl_jax.data.label_inputs; the row length replaces `max_length`), and Φ (LCL: Φ and
  # Ψ) scores each label from its own positions (lcl_jax.models.label_attention).
  label_embeddings: bool = setting(False,
      ("Label-embedding attention (seed 004): rows are [CLS] + the label names' word "
       "pieces + [SEP] + the text + [SEP]; each label's score comes from its own last "
       "hidden state(s) (mean over a name's pieces) through a shared feed-forward layer. "
       "LCL: Ψ scores the same way."),
      flag="bool")
  label_text_tokens: int = setting(50,
      ("With --label_embeddings: text word pieces kept after the label block (the "
       "document's 50); the row length replaces --max_length."),
      bounds=Range(1, integer=True, note="text word pieces after the label block"), flag="integer")
  # Embedding mixing at inference (seed 004 Section 3.4; lcl_jax.train.mixing): after
  # training, the best params are also evaluated with Φ's [CLS] vector h mixed as
  # w * h_test + (1 - w) * h_candidate before the head; results["mixed"]. 'none' = off;
  # 'train' = the most similar training text (embed_mix_similarity: 'cosine' of Φ's own
  # [CLS] vectors, or 'bertscore' through the bert-score package); 'paraphrase' = a
  # paraphrase per example read from paraphrase_file (TSV); 't5' = paraphrases generated
  # by the local T5 checkpoint t5_checkpoint. embed_mix_weight = w (0.92: the document's
  # best).
  embed_mix: str = setting("none",
      ("Embedding mixing after training (seed 004 Sec. 3.4): Φ's [CLS] vector mixed as "
       "w*h_test + (1-w)*h_candidate before the head, candidates the most similar "
       "training text (train), a --paraphrase_file (paraphrase) or --t5_checkpoint "
       "paraphrases (t5); results['mixed']. none = off."),
      flag="enum", choices=EMBED_MIXES)
  embed_mix_weight: float = setting(0.92,
      ("Mixing weight w of the test example's own [CLS] vector, in [0, 1] (0.92: the "
       "document's best)."),
      bounds=Range(0.0, 1.0, note="the weight of the test example's own [CLS] vector"),
      flag="float")
  embed_mix_similarity: str = setting("cosine",
      ("--embed_mix=train: cosine similarity of Φ's [CLS] vectors (exact top-1), or "
       "BERTScore F1 (the bert-score package, not installed by default)."),
      flag="enum", choices=EMBED_MIX_SIMILARITIES)
  paraphrase_file: str | None = setting(None,
      ("--embed_mix=paraphrase: TSV with a header, columns 'text' and 'paraphrase' (or "
       "'split', 'index', 'paraphrase'); see lcl_jax.train.mixing.read_paraphrase_file."),
      flag="string")
  t5_checkpoint: str | None = setting(None,
      ("--embed_mix=t5: a local T5 (seq2seq) checkpoint folder whose generations are the "
       "candidates."),
      flag="string")

  def resolved(self) -> "TrainConfig":
    """A copy with the presets filled in and every field validated.

    Raises:
      ValueError: a field is invalid; the message names its flag (see `validate`).
    """
    self.validate()
    preset = dataset_preset(self.dataset)
    if self.encoder in BASELINE_ENCODERS:
      preset["learning_rate"] = BASELINE_LEARNING_RATE
    cfg = dataclasses.replace(
        self,
        learning_rate=preset["learning_rate"] if self.learning_rate is None else self.learning_rate,
        alpha=preset["alpha"] if self.alpha is None else self.alpha,
        temperature=preset["temperature"] if self.temperature is None else self.temperature,
        weighting_encoder=self.weighting_encoder or self.encoder,
        length_buckets=tuple(sorted(int(b) for b in self.length_buckets)),
        classes=tuple(self.classes) if self.classes else None,
    )
    cfg.validate()
    return cfg

  def validate(self) -> None:
    """Checks every field; raises `ValueError` naming the flag (`--name`, the field).

    Run before anything is written (the trainer calls it through `resolved()`).
    """
    def bad(name: str, why: str) -> ValueError:
      return ValueError(f"--{name}={getattr(self, name)!r}: {why} (TrainConfig.{name})")

    for name in ("dataset", "objective", "encoder", "workdir", "dtype", "parallelism",
                 "dropout_rng_impl"):
      if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
        raise bad(name, "must be a non-empty string")
    for field in settings():  # the choices and bounds each field's `setting` declares
      choices, bounds = field.metadata["choices"], field.metadata["bounds"]
      value = getattr(self, field.name)
      if choices is not None and value not in choices:
        raise bad(field.name, f"must be one of {choices}")
      if bounds is not None and not (bounds.contains(value)
                                     or value is None and field.default is None):
        raise bad(field.name, f"must be {bounds.describe()}"
                  + (" or unset" if field.default is None else ""))
    for name in ("weighting_encoder", "data_dir"):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, str) or not value.strip()):
        raise bad(name, "must be a non-empty string or None")
    self._validate_networks(bad)
    self._validate_numbers(bad)
    self._validate_head_fields(bad)
    self._validate_aux_fields(bad)
    self._validate_label_embeddings(bad)
    self._validate_embed_mix(bad)

  def _validate_networks(self, bad) -> None:
    """The encoders and what they combine with; the dropout RNG, classes and seed."""
    baseline = self.encoder in BASELINE_ENCODERS
    objective = OBJECTIVE_SPECS[self.objective]  # (a choice: checked before)
    if baseline and objective.primary_head != "paper":  # bert_ce: a BERT head
      raise bad("objective", f"{self.objective} needs a BERT checkpoint, not the "
                f"{self.encoder} baseline")
    if baseline and self.export_hf:
      raise bad("export_hf", f"the {self.encoder} baseline has no Hugging Face format")
    if (self.weighting_encoder in BASELINE_ENCODERS) != baseline and (
        objective.uses_weighting_network and self.weighting_encoder is not None):
      raise bad("weighting_encoder", "a baseline and a transformer cannot share one "
                "tokenizer; use baselines for both networks or for neither")
    if self.glove_path is not None and self.encoder not in ("bilstm", "gru", "rnn"):
      raise bad("glove_path", "only the word-level baselines (bilstm, gru, rnn) take GloVe "
                "vectors")
    try:
      import jax
      jax.random.key(0, impl=self.dropout_rng_impl)
    except ValueError as e:
      raise bad("dropout_rng_impl", str(e)) from None
    if self.classes is not None and (
        isinstance(self.classes, str) or not len(self.classes)
        or any(not isinstance(c, str) or not c.strip() for c in self.classes)):
      raise bad("classes", "must be a non-empty list of class names or None")

  def _validate_numbers(self, bad) -> None:
    """Length buckets, thresholds, switches (the numeric ranges are the fields' bounds)."""
    is_int, is_real = _is_int, _is_real
    buckets = self.length_buckets
    if (isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence) or not buckets
        or any(not is_int(b) for b in buckets)):
      raise bad("length_buckets", "must be a non-empty list of integers")
    if min(buckets) < MIN_MAX_LENGTH:
      raise bad("length_buckets", f"every length must be >= {MIN_MAX_LENGTH}")
    thresholds = (self.thresholds,) if is_real(self.thresholds) else self.thresholds
    if (isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence)
        or not thresholds or any(not is_real(t) or not 0.0 < t < 1.0 for t in thresholds)):
      raise bad("thresholds", "must be one number or a list of numbers, each in (0, 1)")
    for name in ("fresh_views_per_epoch", "remat", "export_hf", "progress_bar"):
      if not isinstance(getattr(self, name), bool):
        raise bad(name, "must be true or false")

  def _validate_head_fields(self, bad) -> None:
    """Φ's head, two-stage training, step evaluations, data expansion, saved features."""
    if self.head != "paper" and OBJECTIVE_SPECS[self.objective].primary_head != "paper":
      raise bad("head", f"{self.objective} has BertForSequenceClassification's head; use "
                "'paper'")
    if not isinstance(self.save_features, bool):
      raise bad("save_features", "must be true or false")

  def _validate_aux_fields(self, bad) -> None:
    """Issue 10: the auxiliary task (seed 004, Section 3.2)."""
    if self.aux_weight_end < self.aux_weight_start:
      raise bad("aux_weight_end", f"must be >= --aux_weight_start={self.aux_weight_start} "
                "(T grows over training: the auxiliary loss weighs most at first)")
    if self.aux_task != "none":
      if self.dataset not in AUX_DATASETS:
        raise bad("aux_task", f"the coarse labelings are defined for the 28 GoEmotions "
                  f"labels only (--dataset in {AUX_DATASETS}), not --dataset={self.dataset}")
      if self.encoder in BASELINE_ENCODERS:
        raise bad("aux_task", f"the auxiliary head needs a transformer encoder, not the "
                  f"{self.encoder} baseline")

  def _validate_label_embeddings(self, bad) -> None:
    """Issue 10's label-embedding attention: the flags and what they cannot combine with.

    (The row length against the encoder's positions is checked with the tokenizer, when
    the data are prepared: `lcl_jax.train.data_pipeline`.)
    """
    if not isinstance(self.label_embeddings, bool):
      raise bad("label_embeddings", "must be true or false")
    if not self.label_embeddings:
      return
    if self.encoder in BASELINE_ENCODERS:
      raise bad("label_embeddings", f"needs a transformer --encoder (BERT/ELECTRA/RoBERTa "
                f"checkpoint), not the {self.encoder} baseline")
    if OBJECTIVE_SPECS[self.objective].primary_head != "paper":
      raise bad("label_embeddings", "replaces the classifier head; use --objective=ce "
                f"(or scl/lcl), not {self.objective} (BertForSequenceClassification's "
                "pooler head)")
    if self.head != "paper":
      raise bad("label_embeddings", f"the label-attention head replaces Φ's head; "
                f"--head={self.head} cannot be combined with it (leave --head=paper)")

  def _validate_embed_mix(self, bad) -> None:
    """Seed 004's embedding mixing (checked before anything is written)."""
    import importlib.util
    import os
    if self.embed_mix != "none" and self.encoder in BASELINE_ENCODERS:
      raise bad("embed_mix", f"mixes transformer [CLS] vectors; the {self.encoder} baseline "
                "has none")
    if self.embed_mix_similarity == "bertscore":
      if self.embed_mix != "train":
        raise bad("embed_mix_similarity", "bertscore chooses training candidates; it needs "
                  "--embed_mix=train")
      if importlib.util.find_spec("bert_score") is None:
        raise bad("embed_mix_similarity", "bertscore needs the bert-score package, which is "
                  "not installed (pip install bert-score), or use 'cosine'")
    for name, mode, kind in (("paraphrase_file", "paraphrase", "file"),
                             ("t5_checkpoint", "t5", "directory")):
      value = getattr(self, name)
      if value is None:
        if self.embed_mix == mode:
          raise bad(name, f"--embed_mix={mode} needs --{name}")
        continue
      if not isinstance(value, str) or not value.strip():
        raise bad(name, "must be a non-empty path or unset")
      if self.embed_mix != mode:
        raise bad(name, f"is only read with --embed_mix={mode}")
      exists = os.path.isfile(value) if kind == "file" else os.path.isdir(value)
      if not exists:
        raise bad(name, f"no such {kind}")

  @property
  def trains_on_views(self) -> bool:
    """Whether training batches hold the K augmented views beside the K texts."""
    objective = OBJECTIVE_SPECS.get(self.objective)
    setting_name = objective.views_setting if objective is not None else "baseline_views"
    return getattr(self, setting_name) == "paired"

  @property
  def augmentation_seed(self) -> int:
    """The seed the augmented views are drawn with (`view_seed`, else `seed`)."""
    return self.seed if self.view_seed is None else self.view_seed

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
    values = dict(values)
    for name in ("length_buckets", "classes"):
      if isinstance(values.get(name), list):
        values[name] = tuple(values[name])
    if isinstance(values.get("thresholds"), list):
      values["thresholds"] = tuple(values["thresholds"])
    return cls(**values)


# What the runs of one program (`trainer.train_group`, --runs_per_program) may differ
# in: the seed (init, data order, augmented views, dropout), the objective's alpha and
# temperature (traced per-run scalars) and the folder. Every other field is shared.
GROUP_VARYING = ("seed", "alpha", "temperature", "workdir")


def group_key(cfg: TrainConfig) -> str:
  """Equal for configs that may train in one program (they differ only in GROUP_VARYING)."""
  return dataclasses.replace(cfg, seed=0, alpha=None, temperature=None, workdir="").to_json()


def parse_thresholds(spec: str | float | Sequence[float]) -> tuple[float, ...] | float:
  """'0.5' -> 0.5; '0.3,0.4,...' -> per-class tuple; validates the range."""
  if isinstance(spec, str):
    parts = [p for p in spec.split(",") if p.strip()]
    try:
      values = [float(p) for p in parts]
    except ValueError:
      raise ValueError(f"--thresholds={spec!r}: not a number or a comma-separated list of "
                       "numbers") from None
    if not values:
      raise ValueError(f"--thresholds={spec!r}: empty")
    spec = values[0] if len(values) == 1 else tuple(values)
  values = (spec,) if isinstance(spec, (int, float)) else tuple(spec)
  for v in values:
    if not 0.0 < float(v) < 1.0:
      raise ValueError(f"--thresholds: {v} is not in (0, 1)")
  return float(spec) if isinstance(spec, (int, float)) else tuple(float(v) for v in spec)
