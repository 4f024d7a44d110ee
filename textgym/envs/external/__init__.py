"""Tasks from data nobody here wrote: reasoning-gym's generators and your own rows.

* :mod:`~textgym.envs.external.reasoning_gym` — ReasoningGym: any reasoning-gym generator, or
  a weighted mix, graded by the generator's own ``score_answer``;
* :mod:`~textgym.envs.external.dataset` — Dataset: prompts and gold answers from JSONL, CSV,
  Parquet, a list of dicts or a ``datasets.Dataset``, judged by math-verify or exactly;
* :mod:`~textgym.envs.external.rows` — reading that data without running code;
* :mod:`~textgym.envs.external.answers` — the answer format both state in the prompt, and
  the rewards that read it (``answer_format``);
* :mod:`~textgym.envs.external.budgets` — token budgets sized on the problems themselves.

Their text is open (any characters), so their envs use textgym's open byte-level tokenizer
by default (``Task.open_text``). The libraries they need are the ``data`` extra (``pip
install 'textgym[data]'``) and are imported only when a task is made.
"""
