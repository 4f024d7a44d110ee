"""``textgym play <id>``: be the agent yourself, in the terminal.

Type a turn, press enter, and see the user's reply, the reward with its components, and
at the end whether the episode succeeded. Your turn goes through the env exactly as an
agent's would: it is tokenized (words outside the vocabulary become ``<unk>``, and the
text is lower-cased first because the default vocabulary is) and written token by token.

Commands: ``:oracle`` shows what the task's oracle would say, ``:quit`` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym

from textgym.cli import UnknownEnvError, run_command, unknown_env_message
from textgym.errors import ConfigError
from textgym.tools.flags import build_parser, flag

HELP = "type your turn and press enter; ':oracle' shows the oracle's turn, ':quit' leaves."


def _unknown_words(env: Any, text: str) -> list[str]:
    """Words of ``text`` that the env's tokenizer turns into ``<unk>``."""
    tok = env.tokenizer
    if tok.unk_token_id is None or tok.unk_token_id not in tok.encode(
        text, add_special_tokens=False
    ):
        return []
    pre = getattr(getattr(tok, "backend_tokenizer", None), "pre_tokenizer", None)
    if pre is None:
        return ["?"]
    vocab = tok.get_vocab()
    return [p.lstrip("\u2581") for p, _ in pre.pre_tokenize_str(text) if p not in vocab]


def play_episode(
    env: Any,
    seed: int | None,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Play one episode reading turns with ``read``; returns the last info (None on quit)."""
    env.reset(seed=seed)
    assert env.problem is not None
    write(f"\nuser: {env.problem.prompt}")
    total = 0.0
    while True:
        try:
            line = read("you> ")
        except EOFError:
            write("")
            return None
        text = line.strip()
        if text in (":quit", ":q", ":exit"):
            return None
        if text in (":oracle", ":o"):
            write(f"  oracle: {env.task.oracle(env.problem, tuple(env.turns))}")
            continue
        if text in (":help", ":h", "?"):
            write(f"  {HELP}")
            continue
        if env.tokenizer.get_vocab().get("<user>") is not None:
            text = text.lower()  # the default vocabulary is lower-case
        unknown = _unknown_words(env, text)
        if unknown:
            write(f"  (not in the vocabulary, becomes <unk>: {' '.join(unknown)})")
        ids = env.encode_turn(text)
        info: dict[str, Any] = {}
        reward, done, truncated = 0.0, False, False
        for token in ids:
            _, r, terminated, truncated, info = env.step(token)
            reward += float(r)
            done = terminated or truncated
            if "turn_text" in info:
                break
        total += reward
        if info.get("turn_text") is not None and len(ids) > env.max_new_tokens:
            write(f"  (your turn was cut at max_new_tokens={env.max_new_tokens} tokens)")
        parts = ", ".join(f"{k}={v:.2f}" for k, v in info.get("reward_components", {}).items())
        if "user_reply" in info:
            write(f"user: {info['user_reply']}")
        write(f"  reward {reward:+.3f} ({parts})  return {total:+.3f}")
        if done:
            ending = "truncated (length limit)" if truncated else "done"
            write(f"  episode {ending}: success={info.get('success')}")
            return info


@dataclass
class PlayArgs:
    """The flags of ``textgym play``."""

    env_id: str = flag("textgym/Reasoning-v0", positional=True)
    """the textgym id to play (`textgym list` shows them)"""
    seed: int | None = None
    """seed of the first episode; the next ones count up from it (none: random)"""
    episodes: int = 1
    """episodes to play"""
    split: Literal["train", "test"] | None = None
    """the problems to play: the train or the held-out test split (none: the env's own)"""


def main(argv: Sequence[str] | None = None, prog: str = "textgym play") -> int:
    """``textgym play <id> [--seed S] [--episodes N] [--split test]``.

    Raises:
        UnknownEnvError: ``env_id`` is not a textgym id (the message names the closest).
        ConfigError: a bad flag, ``--episodes`` below 1 or a negative ``--seed``.
    """
    import textgym

    args = build_parser(PlayArgs, prog, __doc__.split("\n")[0]).parse(argv)
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}.")
    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}.")
    if args.env_id not in textgym.env_ids():
        if args.env_id in gym.registry:
            raise UnknownEnvError(
                f"{args.env_id!r} is not a textgym env; `textgym play` plays textgym ids only "
                "(`textgym list` shows them)."
            )
        raise UnknownEnvError(unknown_env_message(args.env_id))
    kwargs = {"split": args.split} if args.split else {}
    env = gym.make(args.env_id, **kwargs).unwrapped
    spec = next(s for s in textgym.ENV_SPECS if s.id == args.env_id)
    print(f"{args.env_id}: {spec.description}\nsuccess: {spec.success}\n{HELP}")
    wins = 0
    try:
        for i in range(args.episodes):
            seed = None if args.seed is None else args.seed + i
            info = play_episode(env, seed)
            if info is None:
                break
            wins += bool(info.get("success"))
    finally:
        env.close()  # also after Ctrl-C: the env may hold a reward's files or a model
    print(f"\n{wins} success(es). bye!")
    return 0


if __name__ == "__main__":
    PROG = "python -m textgym.play"
    raise SystemExit(run_command(PROG, lambda: main(prog=PROG), sys.argv[1:]))
