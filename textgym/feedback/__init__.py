"""Human feedback: rate turns in the terminal, log the ratings, train a reward model on them.

The RLHF loop in miniature::

    textgym rate --env textgym/Copy-v0 --log ratings.jsonl
    textgym rate --mode preference --env textgym/Copy-v0 --log ratings.jsonl
    textgym train-rm --log ratings.jsonl --out my_rm
    gym.make("textgym/Copy-v0", reward=RewardModel("my_rm"))   # or reward='reward_model("my_rm")'

One module per step: :mod:`~textgym.feedback.log` (the append-only, durable ratings log and
its one parser), :mod:`~textgym.feedback.samples` (what is shown to rate),
:mod:`~textgym.feedback.rater` (the terminal rater, a session, and :class:`HumanReward`),
:mod:`~textgym.feedback.train` (the reward model) and :mod:`~textgym.feedback.cli` (the two
commands). Import from the module that holds a name; ``textgym.rewards.human``, the former
home of all of it, re-exports every public name.
"""
