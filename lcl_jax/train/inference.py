"""Former home of the predictor, now :mod:`lcl_jax.inference.predictor`.

Kept so that ``from lcl_jax.train import inference`` keeps working: this module *is*
``lcl_jax.inference.predictor`` (the same module object, so attributes and monkeypatches
are shared). New code imports ``lcl_jax.inference``.
"""
import sys

from lcl_jax.inference import predictor as _predictor

sys.modules[__name__] = _predictor
