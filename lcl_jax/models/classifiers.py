"""Encoder + head classifiers, built from Hugging Face checkpoints.

Every classifier module is called as::

  module.apply({'params': params}, input_ids, attention_mask, token_type_ids=None,
               deterministic=True, rngs={'dropout': key})
  -> ClassifierOutput(logits [B, C] float32, features [B, H] float32)

with ``params = {'encoder': <HF-layout encoder params>, 'head': {...}}`` and
``features`` the last layer's [CLS] hidden state, or with ``feature_pooling="mean"``
the mean of the last layer over non-padding tokens (unnormalised).

* `PaperClassifier` -- the primary encoder Φ of the LCL paper (`heads.PaperHead`);
* `ElectraSequenceClassifier` -- the weighting network Ψ
  (``ElectraForSequenceClassification``);
* `BertSequenceClassifier` -- the BERT baseline (``BertForSequenceClassification``);
* `RobertaSequenceClassifier` -- ``RobertaForSequenceClassification`` (RoBERTa,
  BERTweet, XLM-R), also Ψ when the weighting checkpoint is of that family.

`build_classifier` loads one from a checkpoint; `build_dual_network` builds the
pair (Φ, Ψ); `save_classifier` writes one back as a Hugging Face checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from lcl_jax import choices
from lcl_jax.models import convert
from lcl_jax.models import pretrained
from lcl_jax.models.config import EncoderConfig
from lcl_jax.models.encoder import TransformerEncoder
from lcl_jax.models.label_attention import LabelAttentionHead, LabelLayout
from lcl_jax.models.heads import (FEATURE_POOLINGS, BertClassificationHead, ClassifierOutput,
                                  DenseLayer1Head, DenseLayer2Head, DirectHead,
                                  ElectraClassificationHead, PaperHead,
                                  RobertaClassificationHead, pool_features,
                                  resolve_classifier_dropout)

_logger = logging.getLogger(__name__)

Array = jax.Array
DType = Any
Params = dict[str, Any]


class HeadPart(NamedTuple):
  """Where a sub-tree of a head's params lives in a Hugging Face checkpoint.

  Attributes:
    key: the sub-tree of the head params (None: the whole head).
    module_path: HF module path (``"classifier"``, ``"pooler"``, ``""``).
    in_base_model: under the ``bert.``/``electra.`` prefix (True for the pooler).
    pretrained: part of the pre-trained model (BERT's pooler), loaded whenever
      present; otherwise a task head, loaded according to ``load_head``.
  """

  key: str | None
  module_path: str
  in_base_model: bool
  pretrained: bool = False


def mix_cls_states(hidden_states: Array, candidate_cls: Array, weight: Array | float) -> Array:
  """Seed 004's embedding mixing (Section 3.4): the [CLS] state becomes
  ``w * h_test + (1 - w) * h_candidate``; the other positions are unchanged.

  Args:
    hidden_states: ``[B, T, H]`` last hidden states of the test rows (any float dtype).
    candidate_cls: ``[B, H]`` the candidates' last-layer [CLS] states (float32), or
      ``[B, P, H]``: the first P positions are mixed (a head that reads more than
      [CLS], see `_EncoderClassifier.mixed_positions`).
    weight: w, a scalar or ``[B]`` (per row), in [0, 1].

  Returns:
    ``[B, T, H]`` in the dtype of ``hidden_states``; the mix is computed in float32,
    so ``w = 1`` (finite candidates) and a candidate equal to the row's own [CLS]
    state give back ``hidden_states`` bit for bit.
  """
  hidden_states, candidate_cls = jnp.asarray(hidden_states), jnp.asarray(candidate_cls)
  batch, _, width = hidden_states.shape
  candidate = candidate_cls[:, None] if candidate_cls.ndim == 2 else candidate_cls
  positions = candidate.shape[1] if candidate.ndim == 3 else -1
  if candidate.ndim != 3 or candidate.shape[0] != batch or candidate.shape[2] != width or not (
      1 <= positions <= hidden_states.shape[1]):
    raise ValueError(f"candidate states {candidate_cls.shape}; expected {(batch, width)} or "
                     f"{(batch, 'P', width)} with P <= {hidden_states.shape[1]}")
  w = jnp.asarray(weight, jnp.float32)
  w = w[:, None, None] if w.ndim == 1 else w
  own = hidden_states[:, :positions].astype(jnp.float32)
  mixed = w * own + (1.0 - w) * candidate.astype(jnp.float32)
  return hidden_states.at[:, :positions].set(mixed.astype(hidden_states.dtype))


class _EncoderClassifier(nn.Module):
  """Shared fields and forward pass: encoder -> head, features = last-layer [CLS].

  Attributes:
    config: encoder architecture.
    num_classes: C.
    dtype: compute dtype (parameters float32).
    remat: rematerialise each encoder layer in the backward pass.
    attention_implementation: None (automatic), ``"xla"`` or ``"cudnn"``.
    classifier_dropout: the head's dropout; None means the head's default
      (paper head 0.1; HF heads config.classifier_dropout or hidden dropout).
    head_init: ``"hf"`` (normal(initializer_range), zero bias) or ``"torch"``
      (``torch.nn.Linear`` default, as the authors' release) for new heads.
    feature_pooling: ``"cls"`` (the paper) or ``"mean"`` (masked token mean),
      the ``features`` the contrastive losses see (`heads.pool_features`); the
      heads keep reading [CLS].
    num_aux_classes: G > 0 adds an auxiliary head (params ``aux_head``) of the
      same kind as the main head, with G outputs, on the shared encoder (hard
      parameter sharing, seed 004's auxiliary tasks): ``aux_logits`` [B, G].
      Export (`save_classifier`) and inference use the main head only.
  """

  config: EncoderConfig
  num_classes: int
  dtype: DType = jnp.float32
  remat: bool = False
  attention_implementation: str | None = None
  classifier_dropout: float | None = None
  head_init: str = "hf"
  feature_pooling: str = "cls"
  num_aux_classes: int = 0

  # The head module, where its parameters live in a HF checkpoint, and its HF class.
  HEAD_CLASS: ClassVar[type[nn.Module]]
  HEAD_PARTS: ClassVar[tuple[HeadPart, ...]] = ()
  HF_ARCHITECTURE: ClassVar[str | None] = None
  # transformers' class per model type where it differs from HF_ARCHITECTURE (XLM-R).
  HF_ARCHITECTURE_BY_TYPE: ClassVar[Mapping[str, str]] = {}

  @nn.nowrap
  def head_dropout_rate(self) -> float:
    """HF heads: `classifier_dropout`, else the config's (see resolve_classifier_dropout)."""
    return resolve_classifier_dropout(self.config, self.classifier_dropout)

  @nn.nowrap
  def build_head(self, *, name: str | None = None) -> nn.Module:
    """The head module (unbound when called outside ``apply``, e.g. to init it alone)."""
    return self.HEAD_CLASS(self.config, self.num_classes, dropout_rate=self.head_dropout_rate(),
                           init_scheme=self.head_init, dtype=self.dtype, name=name)

  @nn.nowrap
  def build_aux_head(self, *, name: str | None = None) -> nn.Module:
    """The auxiliary head: the main head's kind and settings, `num_aux_classes` outputs."""
    return self.HEAD_CLASS(self.config, self.num_aux_classes,
                           dropout_rate=self.head_dropout_rate(), init_scheme=self.head_init,
                           dtype=self.dtype, name=name)

  @nn.nowrap
  def head_input_template(self) -> Array:
    """Zeros shaped like the hidden states the head reads (to initialise it alone)."""
    return jnp.zeros((1, 1, self.config.hidden_size), jnp.float32)

  @nn.nowrap
  def mixed_positions(self) -> int:
    """How many leading positions embedding mixing mixes: the ones the head reads
    ([CLS] alone here; a head reading a label block overrides this)."""
    return 1

  @nn.nowrap
  def build_encoder(self, *, name: str | None = None) -> TransformerEncoder:
    """The encoder module (its params are ``params['encoder']``); unbound outside ``apply``
    (embedding mixing encodes the candidates with it, attention maps read it)."""
    return TransformerEncoder(self.config, dtype=self.dtype, remat=self.remat,
                              attention_implementation=self.attention_implementation,
                              name=name)

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array,
               token_type_ids: Array | None = None, *,
               deterministic: bool = True, mix_cls: Array | None = None,
               mix_weight: Array | float | None = None) -> ClassifierOutput:
    """Logits and [CLS] features of a batch (see the module docstring).

    ``mix_cls`` ``[B, H]`` (float32, the candidates' [CLS] states from `build_encoder`)
    with ``mix_weight`` w (scalar or ``[B]``) mixes the [CLS] state the head reads
    (`mix_cls_states`, seed 004's embedding mixing); ``features`` stay unmixed.
    """
    if self.num_classes < 1:
      raise ValueError(f"num_classes must be positive, got {self.num_classes}")
    hidden = self.build_encoder(name="encoder")(input_ids, attention_mask, token_type_ids,
                                                deterministic=deterministic)
    head_input = hidden
    if mix_cls is not None:
      if mix_weight is None:
        raise ValueError("mix_cls needs mix_weight")
      head_input = mix_cls_states(hidden, mix_cls, mix_weight)
    logits = self.build_head(name="head")(head_input, deterministic=deterministic)
    features = pool_features(hidden, attention_mask, self.feature_pooling)
    aux_logits = None
    if self.num_aux_classes:
      aux_logits = self.build_aux_head(name="aux_head")(hidden, deterministic=deterministic)
    return ClassifierOutput(logits=logits, features=features, aux_logits=aux_logits)


class PaperClassifier(_EncoderClassifier):
  """The LCL primary encoder Φ: [CLS] -> Dense(H) -> dropout -> ReLU -> Dense(C) -> dropout."""

  HEAD_CLASS = PaperHead
  HEAD_PARTS = (HeadPart(key=None, module_path="", in_base_model=False),)

  @nn.nowrap
  def head_dropout_rate(self) -> float:
    """The release's `pooler_dropout = nn.Dropout(0.1)` unless overridden."""
    return 0.1 if self.classifier_dropout is None else self.classifier_dropout


class ElectraSequenceClassifier(_EncoderClassifier):
  """The weighting network Ψ: ``ElectraForSequenceClassification`` (head ``classifier.*``)."""

  HEAD_CLASS = ElectraClassificationHead
  HEAD_PARTS = (HeadPart(key=None, module_path="classifier", in_base_model=False),)
  HF_ARCHITECTURE = "ElectraForSequenceClassification"


class BertSequenceClassifier(_EncoderClassifier):
  """The BERT baseline: ``BertForSequenceClassification`` (pooler -> dropout -> linear)."""

  HEAD_PARTS = (HeadPart(key="pooler", module_path="pooler", in_base_model=True,
                         pretrained=True),
                HeadPart(key="classifier", module_path="classifier", in_base_model=False))
  HEAD_CLASS = BertClassificationHead
  HF_ARCHITECTURE = "BertForSequenceClassification"


class _OwnHeadClassifier(_EncoderClassifier):
  """A head transformers has no class for (params at the top of the checkpoint, like
  the paper head); its dropout is `classifier_dropout`, else `DEFAULT_DROPOUT`."""

  HEAD_PARTS = (HeadPart(key=None, module_path="", in_base_model=False),)
  DEFAULT_DROPOUT: ClassVar[float] = 0.0

  @nn.nowrap
  def head_dropout_rate(self) -> float:
    rate = self.DEFAULT_DROPOUT if self.classifier_dropout is None else self.classifier_dropout
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"classifier_dropout must be in [0, 1), got {rate}")
    return rate


class DirectClassifier(_OwnHeadClassifier):
  """Seed 000's direct model: [CLS] -> Dense(H) + tanh -> dropout(0.3) -> Dense(C)."""

  HEAD_CLASS = DirectHead
  DEFAULT_DROPOUT = 0.3


class DenseLayer1Classifier(_OwnHeadClassifier):
  """Seed 003's DenseLayer(1) head: [CLS] -> dropout(p) -> Dense(C) (default p = 0)."""

  HEAD_CLASS = DenseLayer1Head


class DenseLayer2Classifier(_OwnHeadClassifier):
  """Seed 003's DenseLayer(2) head: [CLS] -> dropout -> Dense(H) -> ReLU -> dropout -> Dense(C)."""

  HEAD_CLASS = DenseLayer2Head


class RobertaSequenceClassifier(_EncoderClassifier):
  """``RobertaForSequenceClassification`` / ``XLMRobertaForSequenceClassification``."""

  HEAD_CLASS = RobertaClassificationHead
  HEAD_PARTS = (HeadPart(key=None, module_path="classifier", in_base_model=False),)
  HF_ARCHITECTURE = "RobertaForSequenceClassification"
  HF_ARCHITECTURE_BY_TYPE = {"xlm-roberta": "XLMRobertaForSequenceClassification"}


class LabelAttentionClassifier(_EncoderClassifier):
  """Seed 004's label-embedding attention (`label_attention.LabelAttentionHead`).

  The inputs carry the label block (`lcl_jax.data.label_inputs`); ``layout`` says where
  its pieces are. The head reads the label positions, not [CLS]; ``features`` (the
  contrastive features of SCL/LCL) stay the [CLS] state (or the masked mean). With
  ``num_aux_classes`` = the layout's auxiliary groups, ``aux_logits`` [B, G] come from a
  second scorer (`build_aux_head`). The forward pass is the base class's.
  Params ``head/scorer/{dense,out}`` (top level of an export, like the paper head:
  transformers has no class for this head) and, with groups, ``aux_head/scorer/...``
  (not exported: export and predict use the main head).
  """

  layout: LabelLayout | None = None

  HEAD_CLASS = LabelAttentionHead
  HEAD_PARTS = (HeadPart(key=None, module_path="", in_base_model=False),)

  @nn.nowrap
  def head_dropout_rate(self) -> float:
    """SpanEmo's output dropout 0.1 unless overridden."""
    rate = 0.1 if self.classifier_dropout is None else self.classifier_dropout
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"classifier_dropout must be in [0, 1), got {rate}")
    return rate

  @nn.nowrap
  def build_head(self, *, name: str | None = None) -> nn.Module:
    if self.layout is None:
      raise ValueError("LabelAttentionClassifier needs a label layout (label_layout=...)")
    return LabelAttentionHead(self.config, self.num_classes,
                              dropout_rate=self.head_dropout_rate(),
                              init_scheme=self.head_init, dtype=self.dtype,
                              layout=self.layout, name=name)

  @nn.nowrap
  def build_aux_head(self, *, name: str | None = None) -> nn.Module:
    """Section 3.5.1's auxiliary head: a second scorer on the label vectors, one score per
    coarse group (the layout's ``aux_groups``, ``num_aux_classes`` of them) from the mean
    of its labels' vectors."""
    groups = self.layout.aux_groups
    if len(groups) != self.num_aux_classes:
      raise ValueError(f"num_aux_classes={self.num_aux_classes} but the label layout has "
                       f"{len(groups)} auxiliary groups")
    return LabelAttentionHead(self.config, len(groups), dropout_rate=self.head_dropout_rate(),
                              init_scheme=self.head_init, dtype=self.dtype,
                              layout=self.layout, groups=groups, name=name)

  @nn.nowrap
  def head_input_template(self) -> Array:
    return jnp.zeros((1, self.layout.min_length, self.config.hidden_size), jnp.float32)

  @nn.nowrap
  def mixed_positions(self) -> int:
    """Embedding mixing mixes [CLS] and the whole label block (every position up to the
    last label piece): the states this head reads. Both rows carry the same prefix, so
    label c's pieces are mixed with label c's (seed 004 Section 3.5.3)."""
    return self.layout.min_length


CLASSIFIERS: dict[str, type[_EncoderClassifier]] = {
    "paper": PaperClassifier,
    "electra": ElectraSequenceClassifier,
    "bert": BertSequenceClassifier,
    "direct": DirectClassifier,
    "dense1": DenseLayer1Classifier,
    "dense2": DenseLayer2Classifier,
    "roberta": RobertaSequenceClassifier,
    "label_attention": LabelAttentionClassifier,
}
# Heads a run may put on Φ in place of the paper head (TrainConfig.head). "hf" is the
# checkpoint's own transformers `*ForSequenceClassification` head
# (`sequence_classification_head_for`).
HF_HEAD = "hf"
PRIMARY_HEADS = choices.PRIMARY_HEADS  # (written once in lcl_jax.choices; HF_HEAD among them)


def sequence_classification_head_for(config: EncoderConfig) -> str:
  """The `CLASSIFIERS` key of transformers' `AutoModelForSequenceClassification` head for
  an architecture: ``"bert"`` (BERT: the pre-trained pooler -> dropout -> linear),
  ``"electra"`` (dropout -> dense -> GELU -> dropout -> linear, all new) or
  ``"roberta"`` (RoBERTa family: dropout -> dense -> tanh -> dropout -> linear, all new)."""
  if config.is_roberta:
    return "roberta"
  return "electra" if config.model_type == "electra" else "bert"


def resolve_head(head: str, config: EncoderConfig) -> str:
  """`head` with ``"hf"`` replaced by the architecture's `sequence_classification_head_for`."""
  return sequence_classification_head_for(config) if head == HF_HEAD else head


def weighting_head_for(config: EncoderConfig) -> str:
  """Ψ's head kind for an encoder: the paper's ``"electra"``, or ``"roberta"`` for that family."""
  return "roberta" if config.is_roberta else "electra"


def head_kind(module: nn.Module) -> str:
  """'paper', 'electra' or 'bert': the `CLASSIFIERS` key of a classifier module."""
  for kind, cls in CLASSIFIERS.items():
    if type(module) is cls:  # pylint: disable=unidiomatic-typecheck
      return kind
  raise TypeError(f"not one of this package's classifiers: {type(module).__name__}")


def _part_template(template: Mapping[str, Any], part: HeadPart) -> Mapping[str, Any]:
  return template if part.key is None else template[part.key]


def _part_names(reader: convert.CheckpointReader, template: Mapping[str, Any],
                part: HeadPart) -> list[str]:
  prefix = (reader.base_prefix if part.in_base_model else "") + (
      part.module_path + "." if part.module_path else "")
  return [prefix + convert.flax_path_to_hf_name(path)
          for path in traverse_util.flatten_dict(dict(template))]


def _load_head_params(reader: convert.CheckpointReader, state: Mapping[str, Any],
                      head_kind: str, parts: Sequence[HeadPart], initial: Params,
                      load_head: bool | None) -> tuple[Params, dict[str, str], list[str]]:
  """Head parameters from the checkpoint where wanted and present (else ``initial``).

  Returns the params, ``{name: reason}`` of checkpoint tensors deliberately not
  loaded, and the HF names of freshly initialised parameters.

  Raises:
    convert.CheckpointMismatchError: a head that should be loaded is incomplete
      or mis-shaped (e.g. another number of classes).
  """
  flat_initial = traverse_util.flatten_dict(dict(initial))
  found_all: dict[tuple[str, ...], Any] = {}
  ignore: dict[str, str] = {}
  initialised: list[str] = []
  for part in parts:
    template = _part_template(initial, part)
    names = _part_names(reader, template, part)
    present = [name for name in names if name in state]
    load = bool(present) if (part.pretrained or load_head is None) else load_head
    if not load:
      initialised.extend(names)
      ignore.update({name: f"{head_kind} head tensor not loaded (load_head=False)"
                     for name in present})
      continue
    absent = [name for name in names if name not in state]
    if absent:
      raise convert.CheckpointMismatchError(
          f"{reader.report.source}: the {head_kind} head is incomplete, missing {absent}"
          + ("" if part.pretrained else "; pass load_head=False to start a new head"))
    try:
      found = reader.take(template, module_path=part.module_path,
                          in_base_model=part.in_base_model)
    except convert.CheckpointMismatchError as error:
      raise convert.CheckpointMismatchError(
          f"{error}. To start a new {head_kind} head instead of loading the checkpoint's, "
          "pass load_head=False") from None
    key_prefix = () if part.key is None else (part.key,)
    found_all.update({key_prefix + path: value for path, value in found.items()})
  params = traverse_util.unflatten_dict(
      {path: found_all.get(path, value) for path, value in flat_initial.items()})
  return params, ignore, initialised


def build_classifier(
    head: str,
    checkpoint: pretrained.PathLike | pretrained.Checkpoint,
    num_classes: int, *,
    rng: Array,
    dtype: DType = jnp.float32,
    remat: bool = False,
    classifier_dropout: float | None = None,
    attention_implementation: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    head_init: str = "hf",
    feature_pooling: str = "cls",
    load_head: bool | None = None,
    label_layout: LabelLayout | None = None,
    num_aux_classes: int = 0,
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
    with_report: bool = False,
) -> tuple[_EncoderClassifier, Params] | tuple[_EncoderClassifier, Params, convert.LoadReport]:
  """A classifier with its encoder loaded from a checkpoint and its head new (or loaded).

  Args:
    head: ``"paper"`` (Φ), ``"electra"`` (Ψ), ``"bert"`` (BERT baseline),
      ``"roberta"`` (RoBERTa family's head), ``"direct"`` (seed 000),
      ``"dense1"`` / ``"dense2"`` (seed 003) or ``"hf"`` (the checkpoint
      architecture's transformers head: `sequence_classification_head_for`).
    checkpoint: a local directory, hub id, or a `pretrained.Checkpoint` already
      read (to build several networks from one read).
    num_classes: C.
    rng: PRNG key for the new head parameters.
    dtype: compute dtype (parameters float32).
    remat: rematerialise each encoder layer in the backward pass.
    classifier_dropout: the head's dropout (None: the head's default).
    attention_implementation: None (automatic), ``"xla"`` or ``"cudnn"``.
    config_overrides: `EncoderConfig` fields to change (e.g. dropout rates).
    head_init: initialisation of new head layers, ``"hf"`` or ``"torch"``.
    feature_pooling: ``"cls"`` or ``"mean"``, the contrastive features.
    load_head: None -- load the head from the checkpoint when its tensors are
      there (e.g. a fine-tuned ``ElectraForSequenceClassification`` or a
      directory written by `save_classifier`), else initialise it; True --
      require it; False -- always initialise a new head. BERT's pre-trained
      pooler is loaded whenever present.
    label_layout: where the label pieces sit in the rows (`LabelLayout`); required by
      (and only for) ``head="label_attention"``.
    num_aux_classes: G > 0 adds the auxiliary head ``aux_head`` (see
      `_EncoderClassifier`), always new (its pre-trained parts, BERT's pooler,
      copied from the main head's).
    allow_missing, allow_unexpected: fnmatch patterns tolerated by the strict
      load (see `convert.CheckpointReader.finish`).
    with_report: also return the `convert.LoadReport`.

  Returns:
    ``(module, {'encoder': ..., 'head': ...[, 'aux_head': ...]})`` (plus the report).

  Raises:
    ValueError: unknown ``head`` / ``feature_pooling`` or a bad ``num_classes``.
    convert.CheckpointMismatchError: the strict load failed (names listed).
  """
  _check_classifier_args(head, num_classes, feature_pooling, num_aux_classes)
  checkpoint = _with_overrides(checkpoint, config_overrides)
  head = resolve_head(head, checkpoint.config)
  module = _classifier_module(
      head, checkpoint.config, num_classes, label_layout=label_layout,
      num_aux_classes=num_aux_classes, dtype=dtype, remat=remat,
      attention_implementation=attention_implementation,
      classifier_dropout=classifier_dropout, head_init=head_init,
      feature_pooling=feature_pooling)
  params, report = _classifier_params(
      module, head, checkpoint, rng=rng, load_head=load_head,
      allow_missing=allow_missing, allow_unexpected=allow_unexpected)
  return (module, params, report) if with_report else (module, params)


def _check_classifier_args(head: str, num_classes: int, feature_pooling: str,
                           num_aux_classes: int) -> None:
  """`build_classifier`'s argument checks (before any checkpoint is read).

  Raises:
    ValueError: unknown `head` / `feature_pooling`, `num_classes` not an int >= 1,
      `num_aux_classes` not an int >= 0.
  """
  if head not in CLASSIFIERS and head != HF_HEAD:
    raise ValueError(f"head={head!r}; expected one of {sorted([*CLASSIFIERS, HF_HEAD])}")
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
  if feature_pooling not in FEATURE_POOLINGS:
    raise ValueError(f"feature_pooling={feature_pooling!r}; expected one of {FEATURE_POOLINGS}")
  if not isinstance(num_aux_classes, int) or num_aux_classes < 0:
    raise ValueError(f"num_aux_classes must be an int >= 0, got {num_aux_classes!r}")


def _with_overrides(checkpoint: pretrained.PathLike | pretrained.Checkpoint,
                    config_overrides: Mapping[str, Any] | None) -> pretrained.Checkpoint:
  """`checkpoint` read (unless it already is) with `config_overrides` applied to its
  `EncoderConfig`."""
  if not isinstance(checkpoint, pretrained.Checkpoint):
    return pretrained.load_checkpoint(checkpoint, config_overrides=config_overrides)
  if config_overrides:
    return dataclasses.replace(checkpoint, config=checkpoint.config.replace(**config_overrides))
  return checkpoint


def _classifier_module(head: str, config: EncoderConfig, num_classes: int, *,
                       label_layout: LabelLayout | None, num_aux_classes: int,
                       **module_args: Any) -> _EncoderClassifier:
  """The Flax module of `head` (resolved: a `CLASSIFIERS` key) for `config`.

  Raises:
    ValueError: `label_layout` given without ``head="label_attention"`` (or missing with
      it), or its auxiliary groups other than `num_aux_classes`.
  """
  if (head == "label_attention") != (label_layout is not None):
    raise ValueError("label_layout goes with (and only with) head='label_attention'")
  if label_layout is not None and len(label_layout.aux_groups) != num_aux_classes:
    raise ValueError(f"the label layout has {len(label_layout.aux_groups)} auxiliary groups, "
                     f"num_aux_classes={num_aux_classes}")
  extra = {"layout": label_layout} if label_layout is not None else {}
  return CLASSIFIERS[head](config, num_classes, num_aux_classes=num_aux_classes,
                           **module_args, **extra)


def _classifier_params(module: _EncoderClassifier, head: str,
                       checkpoint: pretrained.Checkpoint, *, rng: Array,
                       load_head: bool | None, allow_missing: Sequence[str],
                       allow_unexpected: Sequence[str]) -> tuple[Params, convert.LoadReport]:
  """`module`'s parameters: the encoder from `checkpoint`, the head loaded or new (see
  `build_classifier`'s `load_head`), the auxiliary head new; and the strict load's report.

  Returns:
    ``({'encoder': ..., 'head': ...[, 'aux_head': ...]}, report)``, leaves jnp arrays.

  Raises:
    convert.CheckpointMismatchError: the strict load failed (names listed).
  """
  cls = type(module)
  encoder_rng, head_rng = jax.random.split(rng)
  reader = checkpoint.reader()
  encoder_params, _ = pretrained.encoder_params_from_checkpoint(checkpoint, reader,
                                                                rng=encoder_rng)
  head_module = module.build_head()
  dummy_hidden = module.head_input_template()
  # Eager on purpose: the few small init ops are cached across builds, where a fresh
  # jax.jit per build would recompile the whole init each time.
  initial_head = head_module.init(head_rng, dummy_hidden, deterministic=True)["params"]
  head_params, ignore, initialised = _load_head_params(
      reader, checkpoint.state_dict, head, cls.HEAD_PARTS, initial_head, load_head)
  if head != "bert":
    ignore[f"{reader.base_prefix}pooler.*"] = f"BERT pooler, unused by the {head} head"
  report = reader.finish(allow_missing=allow_missing, allow_unexpected=allow_unexpected,
                         ignore=ignore)
  report.initialised = initialised
  report.log(_logger)
  params = {"encoder": encoder_params, "head": head_params}
  if module.num_aux_classes:
    aux_params = dict(module.build_aux_head().init(jax.random.fold_in(head_rng, 1), dummy_hidden,
                                                   deterministic=True)["params"])
    for part in cls.HEAD_PARTS:  # pre-trained parts (BERT's pooler) start as the main head's
      if part.pretrained and part.key in aux_params:
        aux_params[part.key] = head_params[part.key]
    params["aux_head"] = aux_params
  return jax.tree_util.tree_map(jnp.asarray, params), report


@dataclasses.dataclass(frozen=True)
class DualNetwork:
  """The LCL pair: primary encoder Φ and weighting network Ψ.

  Attributes:
    primary: Φ (`PaperClassifier`); its ``features`` feed the contrastive loss.
    primary_params: Φ's params.
    weighting: Ψ (`ElectraSequenceClassifier` by default); its logits give the
      LCL weights (softmax) and its own cross-entropy.
    weighting_params: Ψ's params.
  """

  primary: _EncoderClassifier
  primary_params: Params
  weighting: _EncoderClassifier
  weighting_params: Params

  @property
  def params(self) -> dict[str, Params]:
    """``{'primary': ..., 'weighting': ...}`` (one pytree, e.g. for an optimiser)."""
    return {"primary": self.primary_params, "weighting": self.weighting_params}


def build_dual_network(
    encoder_checkpoint: pretrained.PathLike | pretrained.Checkpoint,
    weighting_checkpoint: pretrained.PathLike | pretrained.Checkpoint | None,
    num_classes: int, *,
    rng: Array,
    dtype: DType = jnp.float32,
    remat: bool = False,
    classifier_dropout: float | None = None,
    attention_implementation: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    weighting_head: str | None = None,
    head_init: str = "hf",
    feature_pooling: str = "cls",
) -> DualNetwork:
  """Builds Φ (paper head) and Ψ (ELECTRA classification head) from one or two checkpoints.

  As in the release, the two networks are independent copies even when they
  start from the same checkpoint (``weighting_checkpoint`` None or equal).

  Args:
    encoder_checkpoint: Φ's checkpoint (directory, hub id or `pretrained.Checkpoint`).
    weighting_checkpoint: Ψ's checkpoint; None means the same as Φ's (read once).
    num_classes: C (both networks).
    rng: PRNG key (split for the two new heads).
    weighting_head: Ψ's head, ``"electra"`` (the paper) or ``"bert"``; None: the
      paper's ``"electra"``, or ``"roberta"`` for a RoBERTa-family checkpoint
      (`weighting_head_for`).
    feature_pooling: Φ's contrastive features, ``"cls"`` or ``"mean"``.
    Other arguments: as `build_classifier`, applied to both networks.
  """
  def read(checkpoint):
    if isinstance(checkpoint, pretrained.Checkpoint):
      return checkpoint
    return pretrained.load_checkpoint(checkpoint)

  primary_checkpoint = read(encoder_checkpoint)
  same = weighting_checkpoint is None or (
      not isinstance(weighting_checkpoint, pretrained.Checkpoint)
      and not isinstance(encoder_checkpoint, pretrained.Checkpoint)
      and os.fspath(weighting_checkpoint) == os.fspath(encoder_checkpoint))
  secondary_checkpoint = primary_checkpoint if same else read(weighting_checkpoint)
  primary_rng, weighting_rng = jax.random.split(rng)
  options = dict(dtype=dtype, remat=remat, classifier_dropout=classifier_dropout,
                 attention_implementation=attention_implementation, head_init=head_init,
                 config_overrides=config_overrides)
  primary, primary_params = build_classifier("paper", primary_checkpoint, num_classes,
                                             rng=primary_rng, feature_pooling=feature_pooling,
                                             **options)
  if weighting_head is None:
    weighting_head = weighting_head_for(secondary_checkpoint.config)
  weighting, weighting_params = build_classifier(weighting_head, secondary_checkpoint,
                                                 num_classes, rng=weighting_rng, **options)
  return DualNetwork(primary, primary_params, weighting, weighting_params)


def save_classifier(directory: pretrained.PathLike, module: _EncoderClassifier,
                    params: Params, *, label_names: Sequence[str] | None = None,
                    extra_config: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> pathlib.Path:
  """Writes a classifier as a Hugging Face checkpoint (encoder + head, safetensors).

  The encoder tensors carry the base-model prefix (``bert.``/``electra.``/``roberta.``) and
  the head its HF names, so that:

  * ``electra`` head -> ``ElectraForSequenceClassification.from_pretrained`` loads
    it completely;
  * ``bert`` head -> ``BertForSequenceClassification.from_pretrained`` likewise;
  * ``roberta`` head -> ``RobertaForSequenceClassification`` (XLM-R: ``XLMRoberta...``);
  * ``paper`` head -> transformers' ``BertModel``/``ElectraModel`` load the
    encoder (the head tensors ``pooler_fc.*``/``label.*`` have no transformers
    class).

  `build_classifier(kind, directory, C)` here reloads all three completely.

  Args:
    directory: destination (written atomically, see `pretrained.save_pretrained`).
    module: the classifier module.
    params: its ``{'encoder': ..., 'head': ...}`` params.
    label_names: class names for ``id2label`` / ``label2id`` in config.json.
    extra_config: further config.json keys (e.g. ``problem_type``, lcl_jax metadata).
    overwrite: replace an existing directory.
  """
  kind = head_kind(module)
  config = module.config
  if label_names is not None and len(label_names) != module.num_classes:
    raise ValueError(f"{len(label_names)} label_names for {module.num_classes} classes")
  if module.classifier_dropout is not None and kind != "paper":
    config = config.replace(classifier_dropout=module.classifier_dropout)
  head_params = params["head"]
  pooler_params = None
  head_tensors = {}
  for part in type(module).HEAD_PARTS:
    part_params = _part_template(head_params, part)
    if part.in_base_model:  # BERT's pooler
      pooler_params = part_params
      continue
    prefix = part.module_path + "." if part.module_path else ""
    head_tensors.update(convert.to_hf_state_dict(part_params, prefix=prefix))
  names = list(label_names) if label_names is not None else [
      f"LABEL_{i}" for i in range(module.num_classes)]
  extra_config = {"num_labels": module.num_classes,
                  "id2label": {str(i): name for i, name in enumerate(names)},
                  "label2id": {name: i for i, name in enumerate(names)},
                  "lcl_jax_head": kind, **(extra_config or {})}
  architectures = [type(module).HF_ARCHITECTURE_BY_TYPE.get(config.model_type)
                   or type(module).HF_ARCHITECTURE
                   or pretrained.ARCHITECTURES[config.model_type]]
  return pretrained.save_pretrained(
      directory, config, params["encoder"], pooler_params=pooler_params,
      head_tensors=head_tensors, base_model_prefix=True, architectures=architectures,
      extra_config=extra_config, overwrite=overwrite)
