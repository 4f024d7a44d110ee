"""LM agents' building blocks: the causal-LM policy, its sampler, the trainer, the default model.

``LMPolicy`` (:mod:`agents.lm.policy`) wraps any ``transformers`` causal LM (local path or hub
name, resolved by :mod:`textgym.hub`); ``KVSampler`` (:mod:`agents.lm.sampler`) samples for a
whole vector env with one KV cache, on the installed transformers' cache API
(``KVCacheError`` if a forward ignores the cache). :mod:`agents.lm.trainer` is the loop every
LM algorithm shares, configured by :mod:`agents.lm.config` and writing the run directory of
:mod:`agents.lm.rundir`; :mod:`agents.lm.supervised` is the SFT warm start, and
``default_model_path()`` (:mod:`agents.lm.default_model`) textgym's embedded pre-trained
model, built by ``python -m agents.lm.build_default_model``.
"""

from agents.lm.policy import LMPolicy, ModelMismatchError, PolicyOutput
from agents.lm.sampler import KVCacheError, KVSampler

__all__ = ["KVCacheError", "KVSampler", "LMPolicy", "ModelMismatchError", "PolicyOutput"]
