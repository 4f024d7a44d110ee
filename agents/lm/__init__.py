"""LM agents' building blocks: the causal-LM policy, its sampler, the default model, SFT.

``LMPolicy`` wraps any ``transformers`` causal LM (local path or hub name, resolved by
:mod:`textgym.hub`); ``KVSampler`` samples for a whole vector env with one KV cache, on the
installed transformers' cache API (``KVCacheError`` if a forward ignores the cache);
``default_model_path()`` is textgym's embedded pre-trained model, built by
``python -m agents.lm.build_default_model``.
"""

from agents.lm.policy import KVCacheError, KVSampler, LMPolicy, ModelMismatchError, PolicyOutput

__all__ = ["KVCacheError", "KVSampler", "LMPolicy", "ModelMismatchError", "PolicyOutput"]
