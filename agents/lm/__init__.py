"""LM agents' building blocks: the causal-LM policy, its sampler, the default model, SFT.

``LMPolicy`` wraps any ``transformers`` causal LM (local path or hub name); ``KVSampler``
samples for a whole vector env with one KV cache; ``default_model_path()`` is textgym's
embedded pre-trained model, built by ``python -m agents.lm.build_default_model``.
"""

from agents.lm.policy import KVSampler, LMPolicy, ModelMismatchError, PolicyOutput

__all__ = ["KVSampler", "LMPolicy", "ModelMismatchError", "PolicyOutput"]
