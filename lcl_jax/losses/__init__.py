"""Contrastive and classification losses for Label-aware Contrastive Learning.

Modules (as optax's ``losses/``): ``api`` (the public contrastive losses: each picks
the dense, tiled or ring implementation with ``impl='auto'|'dense'|'tiled'|'ring'``;
``choose_impl`` is the rule, ``Contrastive`` the trainer's choice), ``contrastive``
(the dense SupCon / LCL losses and their multi-label versions, on [B, B] matrices:
``lcl_jax.losses.contrastive.lcl_loss`` etc. stay importable under that explicit
path), ``tiled`` (the same losses tiled over columns and ringed over devices, memory
O(B * tile)), ``combined`` (the cross-entropy terms and the alpha-combined training
objectives) and ``_checks`` (argument checks). The public names are re-exported here.

Bounded memory by default: ``from lcl_jax import lcl_loss`` uses the dense loss below
``AUTO_THRESHOLD`` (2,048) rows and the tiled one (O(B * 512) pair terms) at or above
it, so B = 65,536 runs in about 1 GB instead of 56 GB.

Pure functions of arrays: they work under ``jax.jit``, ``jax.grad``, ``jax.vmap``
and with inputs sharded over the batch axis (``jax.sharding.NamedSharding``).

Contrastive losses (``B`` rows, feature width ``D``, ``C`` classes):

* :func:`supcon_loss` -- supervised contrastive loss (Khosla et al., 2020, "Supervised
  Contrastive Learning", Eq. 2 "L_out"), the SCL baseline of Gunel et al. (2021,
  "Supervised Contrastive Learning for Pre-trained Language Model Fine-tuning") and
  Eq. 2 of Suresh & Ong (2021).
* :func:`lcl_loss` -- label-aware contrastive loss (Suresh & Ong, 2021, "Not All
  Negatives are Equal: Label-Aware Contrastive Loss for Fine-grained Text
  Classification", EMNLP, Eq. 3-4) exactly as the authors' released code computes it.
* :func:`multilabel_supcon_loss` and :func:`multilabel_lcl_loss` -- the multi-label
  extension for GoEmotions (report "Incorporating Label-Aware Contrastive Loss into
  BERT-related models", Eq. 1-2): positives share at least one label.

Classification terms: :func:`softmax_cross_entropy` (integer labels) and
:func:`sigmoid_binary_cross_entropy` (multi-hot label sets).

Training objectives, each returning ``(total, components)`` where ``components`` is a
dict of float scalars (keys ``'ce'``, ``'contrastive'``, ``'weighting_ce'``,
``'total'`` as applicable): :func:`ce_objective`, :func:`scl_objective`
(``alpha * CE + (1 - alpha) * SupCon``) and :func:`lcl_objective` (Eq. 6:
``alpha * (L_w + L_e) + (1 - alpha) * L_LCL``).

Common contract of the contrastive losses:

* ``embeddings`` ``[B, D]`` are L2-normalised inside (``h / max(||h||, 1e-12)``, as
  ``torch.nn.functional.normalize`` in the release), so raw ``[CLS]`` vectors may be
  passed; similarities are cosine similarities divided by ``temperature``.
* ``valid`` is an optional ``[B]`` boolean mask. Rows with ``valid=False`` take part
  in nothing: they are not anchors, not positives and not denominator terms, their
  contents (even NaN) do not reach the value, and their gradients are exactly zero.
* Math is float32 for bfloat16/float16/float32 inputs (float64 when the inputs are
  float64 under ``jax.enable_x64``); the result is a scalar of that dtype. The
  denominators are computed with a masked log-sum-exp, stable for temperatures from
  0.05 to 100. The similarity matmul uses ``Precision.HIGHEST`` so that TPU/GPU
  backends do not silently drop to bf16/TF32 passes (its cost is negligible next to
  the encoder).
* Anchor set: an anchor (valid row) with no positive contributes nothing and is left
  out of the mean over anchors. If no anchor has a positive the loss is ``0``.
* ``reduction`` (keyword, also of :func:`scl_objective` / :func:`lcl_objective` and the
  tiled losses): ``'mean'`` over those anchors (default: the paper and the release) or
  ``'sum'`` (Modarres & Raeisi, seed 001, Sec. 3.3-3.4: ``sum_{i=1}^K``), which is N
  times the mean for N anchors with a positive; anything else raises ``ValueError``.
* Empty batch (``B = 0``, or no valid row): every loss and objective returns ``0``
  (a finite scalar with zero gradients), never an error from inside JAX.
* ``temperature``: a Python/NumPy value that is not finite and > 0 raises
  ``ValueError`` naming ``temperature``; a traced value (under ``jit``/``grad``) cannot
  be checked, so a non-positive traced temperature makes the loss NaN (never a
  silently wrong finite number or inf).
  NOTE: this deviates from the released PyTorch code (and Khosla et al.'s), which
  divides by ``|P_i| = 0`` there and returns NaN; on batches where every anchor has a
  positive (the paired-augmentation batches of the paper) both agree.
* Bad shapes, ranks or dtypes (string or object labels included) raise ``ValueError``
  at trace time naming the argument and the shapes. Label values cannot be checked at trace time: an integer label
  outside ``[0, C)`` on a valid row makes :func:`lcl_loss`,
  :func:`softmax_cross_entropy` and the objectives return NaN rather than a silently
  wrong number (labels on padded rows are ignored).
"""

from lcl_jax.losses.api import (AUTO_THRESHOLD, Contrastive, choose_impl, lcl_loss,
                                multilabel_lcl_loss, multilabel_supcon_loss, supcon_loss)
from lcl_jax.losses.combined import (ce_objective, lcl_objective, scl_objective,
                                     sigmoid_binary_cross_entropy, softmax_cross_entropy)

__all__ = [
    "supcon_loss",
    "lcl_loss",
    "multilabel_supcon_loss",
    "multilabel_lcl_loss",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "ce_objective",
    "scl_objective",
    "lcl_objective",
]

# doctest.testmod(lcl_jax.losses) finds the examples of the re-exported functions here.
# Also importable from here, not re-exported by `lcl_jax`: Contrastive, choose_impl,
# AUTO_THRESHOLD (lcl_jax.losses.api).
__test__ = {name: globals()[name] for name in __all__ + ["choose_impl", "Contrastive"]}
