"""Applying a fine-tuned model to text: the library behind experiments.predict / evaluate.

`Predictor.load(path)` accepts

* a finished run directory (`<workdir>/<objective>/seed<k>` with results.json): the
  best-validation parameters from `best/`, the network(s), tokenizer, lengths, batch
  size and thresholds from its config.json (multi-label thresholds: results.json's
  `per_class_thresholds.thresholds` when the run fitted per-class ones, else the
  config's);
* a folder written by `--export_hf` (`<run>/export/<network>`): config.json
  (`lcl_jax_head`, `id2label`, the `lcl_jax` metadata), model.safetensors, tokenizer.

Texts are tokenised once (`Predictor.tokenize`: `data.batching.tokenize_texts`, or the
label-prefixed rows of `data.label_inputs` for a --label_embeddings run), batched with the run's static
shapes (`data.batching.eval_batches`: `eval_batch_size` rows, the run's length
buckets; padding rows masked) and run through the trainer's own eval step
(`steps.make_eval_step`, compiled by `parallel.make_data_parallel('jit')`, gathered by
`evaluation.evaluate_logits`), so the probabilities are the ones the trainer computed for the
same text (float32 logits -> float64 softmax / sigmoid, `evaluation.probabilities`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any, Sequence

import flax
import jax
import numpy as np

from lcl_jax import models
from lcl_jax.data import batching, label_inputs
from lcl_jax.models import baselines, pretrained
from lcl_jax.models.config import EncoderConfig
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, evaluation, mixing, objectives, parallel, steps
from lcl_jax.train.config import TrainConfig

log = logging.getLogger("lcl_jax.inference")

NETWORKS = ("primary", "weighting")
_OUTPUT_OF = {"primary": "logits", "weighting": "weight_logits"}


def _network_modules(cfg: TrainConfig, num_classes: int, num_aux_classes: int = 0,
                     label_layout: Any = None) -> dict[str, Any]:
  """The run's classifier modules, from the encoders' config.json alone (the pretrained
  weights are not read: the best params replace them). A run with an auxiliary task
  (`num_aux_classes` groups) has Φ's `aux_head` too; predictions use the main head only.
  `label_layout`: the run's `models.LabelLayout` (--label_embeddings), else None."""
  spec = objectives.get_spec(cfg.objective)
  if baselines.is_baseline(cfg.encoder):
    raise RunNotUsableError(f"{cfg.workdir}: predict/evaluate support transformer encoders; "
                            f"this run's encoder is the {cfg.encoder} baseline")
  heads = {"primary": (spec.primary_head_for(cfg.head), cfg.encoder)}
  if spec.uses_weighting_network:
    heads["weighting"] = (None, cfg.weighting_encoder or cfg.encoder)
  dtype = jax.numpy.bfloat16 if cfg.dtype == "bfloat16" else jax.numpy.float32
  modules = {}
  for name, (head, encoder) in heads.items():
    directory = pretrained.resolve_checkpoint_dir(data_pipeline.resolve_checkpoint(encoder))
    config = EncoderConfig.from_json_file(directory / pretrained.CONFIG_NAME)
    options = ({"feature_pooling": cfg.feature_pooling, "num_aux_classes": num_aux_classes}
               if name == "primary" else {})
    # As objectives.build_networks: Ψ's head from its encoder (ELECTRA's, RoBERTa's for
    # that family); with --label_embeddings every network a label-attention classifier.
    head, layout = objectives.network_head(name, head or models.weighting_head_for(config),
                                           label_layout)
    if layout is not None:
      options["layout"] = layout
    head = models.resolve_head(head, config)  # --head=hf: the architecture's HF head
    modules[name] = models.CLASSIFIERS[head](config, num_classes, dtype=dtype, **options)
  return modules


def _label_inputs(tokenizer: Any, label_names: Sequence[str], text_tokens: int, *,
                  aux_membership: Any = None, token_types: bool = True) -> tuple[Any, Any]:
  """The label block and layout a --label_embeddings run (or its export) was trained with,
  rebuilt from its tokenizer, label names and --label_text_tokens (deterministic); a run
  with an auxiliary task passes its label -> group matrix (its `aux_head` is restored
  with the params, predictions use the main head)."""
  block = label_inputs.label_block(tokenizer, label_names, text_tokens,
                                   token_types=token_types)
  return block, objectives.label_layout_for(block, aux_membership=aux_membership)


class RunNotUsableError(FileNotFoundError):
  """The path is not a finished run directory nor an exported folder (or one of its
  files is damaged)."""


def _read_json(path: pathlib.Path) -> Any:
  """A run's or export's JSON file; RunNotUsableError naming it when it is damaged."""
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except (ValueError, UnicodeDecodeError) as e:
    raise RunNotUsableError(f"{path} is damaged (not valid JSON: {e}); restore it, or train "
                            "the run again") from None


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One text's prediction.

  Attributes:
    labels: single-label: the `top_k` most probable class names, most probable first;
      multi-label: every class whose probability is >= its threshold (by probability).
    scores: their probabilities (softmax; multi-label: per-class sigmoid), in [0, 1].
    probabilities: float64 [C], every class.
  """
  labels: tuple[str, ...]
  scores: tuple[float, ...]
  probabilities: np.ndarray


@dataclasses.dataclass
class Predictor:
  """A loaded model: networks, best params, tokenizer and the run's batching settings.

  Attributes:
    modules / params: `{'primary': ...[, 'weighting': ...]}` (exports: one network,
      stored under the name it had in the run).
    tokenizer: the encoder's Hugging Face fast tokenizer.
    label_names: class names, index = class id.
    multilabel: sigmoid + thresholds instead of softmax + argmax.
    thresholds: float64 [C] decision thresholds (multi-label), else None.
    max_length, length_buckets, batch_size: the run's tokenisation and eval batching.
    source: the path loaded; info: dataset, objective, encoder(s), seed (for reports).
    label_block: the run's `lcl_jax.data.label_inputs.LabelBlock` (--label_embeddings:
      texts are encoded after the label block, `max_length` is the block's), else None.
  """
  modules: dict[str, Any]
  params: dict[str, Any]
  tokenizer: Any
  label_names: tuple[str, ...]
  multilabel: bool
  thresholds: np.ndarray | None
  max_length: int
  length_buckets: tuple[int, ...]
  batch_size: int
  source: pathlib.Path
  info: dict[str, Any]
  label_block: Any = None
  _dp: Any = dataclasses.field(default=None, repr=False)
  _eval_steps: Any = dataclasses.field(default=None, repr=False)
  _device_params: Any = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    self._dp = parallel.make_data_parallel("jit")
    self._eval_steps = {}  # networks -> compiled eval step of those networks only
    self._device_params = self._dp.put_state(self.params)

  def _eval_step(self, networks: tuple[str, ...]):
    """The trainer's eval step over `networks` (sorted names), compiled at first use: a
    predict of one network runs (and compiles) that network alone."""
    if networks not in self._eval_steps:
      self._eval_steps[networks] = self._dp.compile_eval_step(
          steps.make_eval_step({name: self.modules[name] for name in networks}))
    return self._eval_steps[networks]

  @property
  def num_classes(self) -> int:
    return len(self.label_names)

  @property
  def networks(self) -> tuple[str, ...]:
    return tuple(sorted(self.modules))

  # ------------------------------------------------------------------ loading

  @classmethod
  def load(cls, path: str | pathlib.Path, *, batch_size: int | None = None) -> "Predictor":
    """A run directory or an exported HF folder (see the module docstring).

    Raises:
      RunNotUsableError: `path` is neither, or a run that has not finished (the
        message says what is missing and what to do).
    """
    path = pathlib.Path(path)
    if not path.is_dir():
      raise RunNotUsableError(f"--run={path}: no such directory")
    config_path = path / "config.json"
    if not config_path.is_file():
      raise RunNotUsableError(
          f"--run={path}: no config.json; expected a run directory "
          "(<workdir>/<objective>/seed<k>) or a folder written by --export_hf "
          "(<run>/export/<network>)")
    config = _read_json(config_path)
    if "lcl_jax_head" in config:
      return cls.from_export(path, batch_size=batch_size)
    if "config" in config:
      return cls.from_run(path, batch_size=batch_size)
    raise RunNotUsableError(
        f"{config_path} is neither a run's config.json nor an lcl_jax export's "
        "(no 'config' / 'lcl_jax_head' key)")

  @classmethod
  def from_run(cls, run_dir: str | pathlib.Path, *,
               batch_size: int | None = None) -> "Predictor":
    """The best-validation networks of a finished run (see `load`)."""
    run_dir = pathlib.Path(run_dir).absolute()
    results_path = run_dir / "results.json"
    if not results_path.is_file():
      raise RunNotUsableError(
          f"--run={run_dir}: the run has not finished (no results.json); re-run its "
          "training command to resume it, or use a finished run")
    saved = _read_json(run_dir / "config.json")
    cfg = TrainConfig.from_dict(saved["config"])
    if baselines.is_baseline(cfg.encoder):  # before any tokenizer is loaded (issue 18)
      raise RunNotUsableError(
          f"--run={run_dir}: predict/evaluate serve transformer encoders only; this run's "
          f"encoder is the {cfg.encoder} baseline (its word vocabulary is rebuilt from the "
          "training data, not saved with the run); its test metrics are in results.json")
    results = _read_json(results_path)
    dataset = saved.get("dataset", {})
    label_names = tuple(dataset.get("label_names") or ())
    num_classes = int(dataset.get("num_classes") or len(label_names))
    multilabel = bool(results.get("multilabel", dataset.get("multilabel", False)))
    tokenizer = pretrained.load_tokenizer(data_pipeline.resolve_checkpoint(cfg.encoder))
    aux_label_names = tuple(dataset.get("aux_label_names") or ())
    block = layout = None
    if cfg.label_embeddings:  # the rows the run trained on (as data_pipeline makes them)
      encoders = data_pipeline.label_encoder_configs(cfg)
      block, layout = _label_inputs(
          tokenizer, label_names, cfg.label_text_tokens,
          token_types=all(c.type_vocab_size >= 2 for _, _, c in encoders),
          aux_membership=objectives.aux_membership(cfg) if aux_label_names else None)
    modules = _network_modules(cfg, num_classes, len(aux_label_names), layout)
    try:  # the shapes stored in best/ (no trace of the networks' init: start-up time)
      best, _ = checkpoint_lib.restore_best_params(run_dir)
    except (FileNotFoundError, checkpoint_lib.CorruptCheckpointError) as e:
      raise RunNotUsableError(f"--run={run_dir}: {e}") from None
    if sorted(best) != sorted(modules):
      raise RunNotUsableError(f"--run={run_dir}: best/ holds the networks {sorted(best)}, "
                              f"its config.json describes {sorted(modules)}")
    thresholds = None
    if multilabel:
      # Per-class thresholds fitted after training (threshold_fit) win over the config's.
      values = ((results.get("per_class_thresholds") or {}).get("thresholds")
                or results.get("thresholds", cfg.thresholds))
      thresholds = np.broadcast_to(np.asarray(values, np.float64), (num_classes,)).copy()
    info = {"kind": "run", "dataset": cfg.dataset, "objective": cfg.objective,
            "encoder": cfg.encoder, "weighting_encoder": results.get("weighting_encoder"),
            "seed": cfg.seed, "best_epoch": results.get("best_epoch"),
            "max_eval_examples": cfg.max_eval_examples,
            "max_train_examples": cfg.max_train_examples, "classes": cfg.classes,
            "data_dir": cfg.data_dir}
    return cls(modules=modules, params=jax.device_get(best), tokenizer=tokenizer,
               label_names=label_names, multilabel=multilabel, thresholds=thresholds,
               max_length=cfg.max_length if block is None else block.max_length,
               length_buckets=tuple(cfg.length_buckets),
               batch_size=int(batch_size or cfg.eval_batch_size), source=run_dir, info=info,
               label_block=block)

  @classmethod
  def from_export(cls, folder: str | pathlib.Path, *,
                  batch_size: int | None = None) -> "Predictor":
    """A folder written by `--export_hf` (weights, head kind, labels, tokenizer)."""
    folder = pathlib.Path(folder).absolute()
    config = _read_json(folder / "config.json")
    id2label = config.get("id2label") or {}
    label_names = tuple(id2label[str(i)] for i in range(len(id2label)))
    meta = config.get("lcl_jax") or {}
    head = config["lcl_jax_head"]
    tokenizer = pretrained.load_tokenizer(folder)
    block = layout = None
    if head == "label_attention":
      settings = meta.get("label_attention") or {}
      if "text_tokens" not in settings:
        raise RunNotUsableError(f"{folder}: a label-attention export without its "
                                "'lcl_jax.label_attention.text_tokens' in config.json")
      block, layout = _label_inputs(tokenizer, label_names, int(settings["text_tokens"]),
                                    token_types=bool(settings.get("token_types", True)))
    module, params = models.build_classifier(
        head, folder, len(label_names), rng=jax.random.key(0), load_head=True,
        **({"label_layout": layout} if layout is not None else {}))
    network = meta.get("network", "primary")
    multilabel = bool(meta.get("multilabel",
                               config.get("problem_type") == "multi_label_classification"))
    thresholds = None
    if multilabel:
      thresholds = np.broadcast_to(np.asarray(meta.get("thresholds") or 0.5, np.float64),
                                   (len(label_names),)).copy()
    defaults = TrainConfig()
    info = {"kind": "export", "dataset": meta.get("dataset"),
            "objective": meta.get("objective"), "network": network, "head": head}
    return cls(modules={network: module}, params={network: jax.device_get(params)},
               tokenizer=tokenizer, label_names=label_names,
               multilabel=multilabel, thresholds=thresholds,
               max_length=(int(meta.get("max_length", defaults.max_length)) if block is None
                           else block.max_length),
               length_buckets=tuple(meta.get("length_buckets", defaults.length_buckets)),
               batch_size=int(batch_size or meta.get("eval_batch_size",
                                                     defaults.eval_batch_size)),
               source=folder, info=info, label_block=block)

  # ---------------------------------------------------------------- applying

  def logits(self, texts: Sequence[str], *,
             networks: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """`{network: float32 [N, C] logits}` for `networks` (default: every loaded network),
    in input order.

    Raises:
      ValueError: no texts, a text that is not a str, or a network not loaded.
    """

    texts = list(texts)
    if not texts:
      raise ValueError("no texts to classify (the input is empty)")
    names = self._check_networks(networks)
    tokens = self.tokenize(texts)
    labels = np.zeros(len(texts), np.int32)
    batches = batching.eval_batches(tokens, labels, batch_size=self.batch_size,
                                    buckets=self.length_buckets,
                                    row_multiple=self._dp.num_devices)
    params = {name: self._device_params[name] for name in names}
    try:
      outputs = evaluation.evaluate_logits(self._eval_step(names), self._dp, params,
                                           batches, len(texts), what="prediction")
    except flax.errors.FlaxError as e:
      # best/ is restored with its own shapes (no trace of the networks' init at start-up),
      # so a checkpoint that does not fit the config's networks shows here, at first use.
      raise RunNotUsableError(
          f"{self.source}: best/ does not hold the networks its config.json describes "
          f"({type(e).__name__}: {str(e).split(' (https://')[0]}); was config.json edited "
          "or copied from another run?") from None
    by_output = {output: network for network, output in _OUTPUT_OF.items()}
    return {by_output[name]: value for name, value in outputs.items() if name in by_output}

  def tokenize(self, texts: Sequence[str]):
    """`data.batching.TokenizedTexts` of `texts` as the run encoded them: truncated at
    its max_length, or (--label_embeddings) after the label block, cut to its text budget."""

    if self.label_block is not None:
      return label_inputs.tokenize_with_labels(list(texts), self.tokenizer, self.label_block)
    return batching.tokenize_texts(list(texts), self.tokenizer, max_length=self.max_length)

  def text_batches(self, texts: Sequence[str]):
    """The eval batches `logits` runs on (the run's static shapes; labels zero)."""

    tokens = self.tokenize(texts)
    return batching.eval_batches(tokens, np.zeros(len(tokens), np.int32),
                                 batch_size=self.batch_size, buckets=self.length_buckets,
                                 row_multiple=self._dp.num_devices)

  def mixer(self):
    """Φ's `mixing.Mixer` (embedding mixing, seed 004) on this model's batches.

    Raises:
      ValueError: the model has no primary network (an exported Ψ).
    """
    if "primary" not in self.modules:
      raise ValueError(f"{self.source}: embedding mixing needs the primary network Φ; this "
                       f"model has {list(self.networks)}")
    return mixing.Mixer(self.modules["primary"], {"primary": self._device_params["primary"]},
                        self._dp, self.text_batches)

  def _check_networks(self, networks: Sequence[str] | None) -> tuple[str, ...]:
    """`networks` (None: every loaded one) as sorted names; ValueError naming one that
    is not loaded."""
    if networks is None:
      return self.networks
    if isinstance(networks, str):
      raise TypeError(f"networks must be a sequence of names, not the str {networks!r}")
    for network in networks:
      if network not in self.modules:
        raise ValueError(f"network {network!r} is not in {self.source} (it has "
                         f"{list(self.networks)})")
    if not networks:
      raise ValueError("networks must name at least one network")
    return tuple(sorted(set(networks)))

  def probabilities(self, texts: Sequence[str], *,
                    networks: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """`{network: float64 [N, C]}` for `networks` (default: all): softmax (single-label)
    or sigmoid (multi-label)."""
    return {name: evaluation.probabilities(value, self.multilabel)
            for name, value in self.logits(texts, networks=networks).items()}

  def default_network(self) -> str:
    return "primary" if "primary" in self.modules else self.networks[0]

  def decide(self, probs: np.ndarray, *, top_k: int = 1) -> list[Prediction]:
    """Labels of each row of `probs` [N, C] (see `Prediction`)."""
    if top_k < 1:
      raise ValueError(f"top_k must be >= 1, got {top_k}")
    out = []
    for row in probs:
      if self.multilabel:
        chosen = np.flatnonzero(row >= self.thresholds)
        chosen = chosen[np.argsort(-row[chosen], kind="stable")]
      else:
        chosen = np.argsort(-row, kind="stable")[:top_k]
      out.append(Prediction(labels=tuple(self.label_names[i] for i in chosen),
                            scores=tuple(float(row[i]) for i in chosen), probabilities=row))
    return out

  def predict(self, texts: Sequence[str], *, top_k: int = 1,
              network: str | None = None) -> list[Prediction]:
    """Classifies `texts` with one network (default Φ, the run's reported one; only that
    network runs)."""
    network = network or self.default_network()
    self._check_networks([network])
    return self.decide(self.probabilities(texts, networks=[network])[network], top_k=top_k)
