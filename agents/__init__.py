"""Learners for textgym: tabular baselines, stable-baselines3 glue, and LM policy-gradient agents.

Arrows point one way: ``agents`` imports ``textgym``, never the reverse.
"""
