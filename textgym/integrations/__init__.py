"""Adapters that let trainers people already run use textgym's envs and rewards unchanged.

Each module is an optional extra with its own dependencies (``pip install textgym[trl]`` for
:mod:`textgym.integrations.trl`). Nothing here is imported by ``import textgym``: import the
module you need, e.g. ``from textgym.integrations.trl import reward_func``.
"""
