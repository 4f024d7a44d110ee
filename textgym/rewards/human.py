"""Human feedback: rate turns in the terminal, log the ratings, train a reward model on them.

The RLHF loop in miniature::

    python -m textgym.rewards.human rate --env textgym/Copy-v0 --log ratings.jsonl
    python -m textgym.rewards.human rate --mode preference --env textgym/Copy-v0 --log ratings.jsonl
    python -m textgym.rewards.human train --log ratings.jsonl --out my_rm
    gym.make("textgym/Copy-v0", reward=RewardModel("my_rm"))   # or reward='reward_model("my_rm")'

The log is append-only JSONL, one rating per line, flushed and fsynced as soon as it is
given, so a crash or a kill loses at most the rating being typed. A restarted session skips
the samples already rated. A line torn by a kill mid-write is cut off when the log is
reopened and skipped when it is read.

Training fits a small sequence-classification model: Bradley-Terry on preferences
(``-log sigmoid(r(chosen) - r(rejected))``) and regression on scores (mapped to ``[0, 1]``),
and saves it with ``save_pretrained``, so :class:`~textgym.rewards.models.RewardModel` loads it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from textgym.rewards.base import Reward, RewardContext

SCORE, PREFERENCE = "score", "preference"


class StopRating(Exception):
    """The rater typed ``q`` or closed the input: end the session."""


# -- the log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    """One human judgement, as stored in the log.

    Attributes:
        kind: ``"score"`` (``text`` rated ``score`` on ``scale``) or ``"preference"``
            (``a`` versus ``b``; ``winner`` is ``"a"``, ``"b"`` or ``"tie"``).
        context: What the agent was answering (the conversation before the turn).
        sample_id: Identifies the rated sample, so a resumed session skips it.
    """

    kind: str
    context: str
    sample_id: str = ""
    text: str | None = None
    score: float | None = None
    scale: tuple[float, float] = (1.0, 5.0)
    a: str | None = None
    b: str | None = None
    winner: str | None = None
    time: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind == SCORE:
            if self.text is None or self.score is None:
                raise ValueError("A score rating needs text and score.")
            lo, hi = self.scale
            if not lo <= self.score <= hi:
                raise ValueError(f"Score {self.score} is outside the scale [{lo}, {hi}].")
        elif self.kind == PREFERENCE:
            if self.a is None or self.b is None or self.winner not in ("a", "b", "tie"):
                raise ValueError("A preference rating needs a, b and winner in {'a', 'b', 'tie'}.")
        else:
            raise ValueError(
                f"Unknown rating kind {self.kind!r}; expected 'score' or 'preference'."
            )

    @property
    def target(self) -> float:
        """A score mapped to ``[0, 1]``; for a preference, P(a is better): 1, 0 or 0.5."""
        if self.kind == SCORE:
            lo, hi = self.scale
            return (float(self.score) - lo) / (hi - lo)  # type: ignore[arg-type]
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[self.winner]  # type: ignore[index]

    def to_json(self) -> str:
        """One log line (without the newline)."""
        d = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        d["scale"] = list(self.scale)
        return json.dumps(d, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rating:
        """Parse one log record."""
        d = dict(d)
        if "scale" in d:
            d["scale"] = tuple(float(x) for x in d["scale"])
        return cls(**d)


class RatingLog:
    """An append-only JSONL file of :class:`Rating`; every append is flushed and fsynced.

    Opening a log whose last line was torn (the process was killed mid-write) cuts that
    partial line, so the next rating starts on a clean line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open)

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        print(
            f"textgym: cutting a torn last line ({len(data) - keep} bytes) from {self.path}",
            file=sys.stderr,
        )
        with open(self.path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())

    def append(self, rating: Rating) -> None:
        """Write one rating durably: it survives a kill as soon as this returns."""
        self._file.write(rating.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RatingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_ratings(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Rating]:
    """Replay one or more logs, in order. A torn last line is skipped; any other bad line
    raises ``ValueError`` with its file and line number."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ratings: list[Rating] = []
    for path in paths:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                ratings.append(Rating.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                if number == len(lines):  # the torn tail of a killed session
                    continue
                raise ValueError(
                    f"{path}:{number}: not a rating record ({exc}): {line[:80]!r}"
                ) from exc
    return ratings


# -- the terminal rater -------------------------------------------------------------------


class Rater:
    """Shows turns in a terminal and reads scores or preferences, re-prompting on bad input.

    Args:
        log: Where ratings go (a :class:`RatingLog` or a path).
        scale: Inclusive score range.
        input, output: Streams (stdin and stdout by default).
    """

    def __init__(
        self,
        log: RatingLog | str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        self.log = log if isinstance(log, RatingLog) else RatingLog(log)
        if not scale[0] < scale[1]:
            raise ValueError(f"scale must be (low, high) with low < high, got {scale}.")
        self.scale = (float(scale[0]), float(scale[1]))
        self.input = input or sys.stdin
        self.output = output or sys.stdout

    def _say(self, text: str) -> None:
        self.output.write(text)
        self.output.flush()

    def _ask(self, prompt: str) -> str:
        self._say(prompt)
        line = self.input.readline()
        if line == "":
            raise StopRating("end of input")
        answer = line.strip().lower()
        if answer in ("q", "quit", "exit"):
            raise StopRating("quit")
        return answer

    def rate_score(self, context: str, text: str, sample_id: str = "") -> Rating | None:
        """Show one turn, read a score, log it. ``None`` if skipped.

        Raises:
            StopRating: the rater quit or the input ended.
        """
        lo, hi = self.scale
        self._say(f"\n--- context ---\n{context}\n--- turn ---\n{text}\n")
        while True:
            answer = self._ask(f"score {lo:g}-{hi:g} (s skip, q quit): ")
            if answer in ("s", "skip"):
                return None
            try:
                score = float(answer)
            except ValueError:
                self._say(f"  {answer!r} is not a number; type a score from {lo:g} to {hi:g}.\n")
                continue
            if not (np.isfinite(score) and lo <= score <= hi):
                self._say(f"  {answer} is outside {lo:g}-{hi:g}; try again.\n")
                continue
            rating = Rating(
                SCORE,
                context,
                sample_id,
                text=text,
                score=score,
                scale=self.scale,
                time=time.time(),
            )
            self.log.append(rating)
            return rating

    def rate_preference(self, context: str, a: str, b: str, sample_id: str = "") -> Rating | None:
        """Show two turns, read which is better (``a``, ``b`` or ``=``), log it."""
        self._say(f"\n--- context ---\n{context}\n--- A ---\n{a}\n--- B ---\n{b}\n")
        while True:
            answer = self._ask("better: a / b / = (tie), s skip, q quit: ")
            if answer in ("s", "skip"):
                return None
            winner = {"a": "a", "1": "a", "b": "b", "2": "b", "=": "tie", "tie": "tie"}.get(answer)
            if winner is None:
                self._say(f"  {answer!r}: type a, b or = (tie).\n")
                continue
            rating = Rating(
                PREFERENCE,
                context,
                sample_id,
                a=a,
                b=b,
                winner=winner,
                scale=self.scale,
                time=time.time(),
            )
            self.log.append(rating)
            return rating


class HumanReward(Reward):
    """A person scores each turn in the terminal as the env runs (``reward=HumanReward(...)``).

    The score is mapped to ``[0, 1]``; a skipped turn scores ``skip_value``. Every rating is
    also logged, so the session doubles as reward-model training data.
    """

    name = "human"

    def __init__(
        self,
        log: str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        skip_value: float = 0.5,
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        self.rater = Rater(log, scale=scale, input=input, output=output)
        self.skip_value = skip_value

    def __call__(self, ctx: RewardContext) -> float:
        from textgym.rewards.models import conversation_before

        context = conversation_before(ctx)
        rating = self.rater.rate_score(context, ctx.text, sample_id=sample_id(context, ctx.text))
        return self.skip_value if rating is None else rating.target


# -- samples to rate ----------------------------------------------------------------------


def sample_id(*texts: str) -> str:
    """A stable id for a sample, from its texts."""
    return hashlib.sha1("\x1f".join(texts).encode()).hexdigest()[:16]


def samples_from_file(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Samples from JSONL: ``{"context", "text"}`` to score or ``{"context", "a", "b"}`` to compare."""
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc}).") from exc
        if "context" not in record or not ("text" in record or {"a", "b"} <= set(record)):
            raise ValueError(
                f'{path}:{number}: a sample needs "context" and "text" (to score) or "a" and '
                f'"b" (to compare); got keys {sorted(record)}.'
            )
        yield {k: str(v) for k, v in record.items() if k in ("context", "text", "a", "b")}


def samples_from_env(
    env_id: str, n: int, seed: int = 0, noise: float = 0.5
) -> Iterator[dict[str, str]]:
    """First-turn samples from an env: the oracle's turn and a corrupted one per problem.

    Each sample has ``context``, ``a`` and ``b`` (in random order) and ``text`` (one of
    them), so the same stream serves score and preference sessions.
    """
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(env.action_masks())
    allowed = allowed[allowed != env.chat.eot_id]
    for i in range(n):
        env.reset(seed=seed + i)
        good = env.task.oracle(env.problem, env.turns)
        good_ids = env.tokenizer.encode(good, add_special_tokens=False) or [
            int(rng.choice(allowed))
        ]
        bad_ids = [int(rng.choice(allowed)) if rng.random() < noise else t for t in good_ids]
        if bad_ids == good_ids:
            bad_ids[int(rng.integers(len(bad_ids)))] = int(rng.choice(allowed))
        bad = env.tokenizer.decode(bad_ids)
        a, b = (good, bad) if rng.random() < 0.5 else (bad, good)
        yield {
            "context": env.problem.prompt,
            "a": a,
            "b": b,
            "text": a if rng.random() < 0.5 else b,
        }
    env.close()


def run_session(
    samples: Iterable[dict[str, str]],
    rater: Rater,
    mode: str = SCORE,
    limit: int | None = None,
) -> int:
    """Rate ``samples`` until they run out, ``limit`` ratings are logged, or the rater quits.

    Samples already in the log (by :func:`sample_id`) are skipped, so a killed session
    resumes where it stopped. Returns the number of ratings logged.
    """
    done = {r.sample_id for r in read_ratings(rater.log.path)} if rater.log.path.exists() else set()
    logged = 0
    try:
        for s in samples:
            if limit is not None and logged >= limit:
                break
            if mode == SCORE:
                text = s.get("text", s.get("a"))
                sid = sample_id(s["context"], text)
                if sid not in done and rater.rate_score(s["context"], text, sid):
                    logged += 1
            elif mode == PREFERENCE:
                if "a" not in s or "b" not in s:
                    raise ValueError("Preference mode needs samples with 'a' and 'b'.")
                sid = sample_id(s["context"], s["a"], s["b"])
                if sid not in done and rater.rate_preference(s["context"], s["a"], s["b"], sid):
                    logged += 1
            else:
                raise ValueError(f"mode must be 'score' or 'preference', got {mode!r}.")
    except StopRating:
        pass
    rater._say(f"\n{logged} rating(s) logged to {rater.log.path}\n")
    return logged


# -- training a reward model --------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_reward_model` did."""

    path: Path
    n_scores: int
    n_preferences: int
    final_loss: float
    train_accuracy: float


def _build_model(
    base: str | None, tokenizer: Any, hidden: int, layers: int, max_length: int
) -> Any:
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    if base is not None:
        from textgym.rewards.models import ModelLoadError, check_model_path

        check_model_path(base, "base model")
        try:
            model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Could not load the base model {base!r}: {exc}") from exc
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model
    # A small BERT encoder from scratch: enough for a few hundred ratings, trains in seconds.
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 32),
        intermediate_size=2 * hidden,
        max_position_embeddings=max_length,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def train_reward_model(
    ratings: Sequence[Rating] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    base: str | None = None,
    tokenizer: Any = None,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    max_length: int = 128,
    seed: int = 0,
    log: Any = None,
) -> TrainResult:
    """Fit a reward model to ratings and save it to ``out`` (``RewardModel(out)`` loads it).

    Args:
        ratings: :class:`Rating` objects, or one or more log paths.
        out: Output directory (model, tokenizer, and ``textgym_reward_model.json``).
        base: A sequence-classification-capable model to fine-tune (path or name); ``None``
            trains a small BERT from scratch on ``tokenizer``.
        tokenizer: Tokenizer object or path; default: ``base``'s, else textgym's default.
        epochs, lr, batch_size: Optimisation (AdamW, full passes over the ratings).
        hidden, layers, max_length: Size of the from-scratch model.
        seed: Seeds torch and the shuffling.
        log: Optional ``print``-like callable for per-epoch losses.
    """
    import torch

    from textgym.rewards.models import reward_model_inputs
    from textgym.tokenizer import load_tokenizer

    if isinstance(ratings, (str, os.PathLike)) or (
        ratings and isinstance(next(iter(ratings)), (str, os.PathLike))
    ):
        ratings = read_ratings(ratings)  # type: ignore[arg-type]
    ratings = list(ratings)  # type: ignore[arg-type]
    scores = [r for r in ratings if r.kind == SCORE]
    prefs = [r for r in ratings if r.kind == PREFERENCE]
    if not ratings:
        raise ValueError(
            "No ratings to train on: rate some turns first (textgym rate --env ... --log ...)."
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if tokenizer is None:
        tokenizer = load_tokenizer(base) if base is not None else load_tokenizer(None)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _build_model(base, tokenizer, hidden, layers, max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def rewards(contexts: list[str], texts: list[str]) -> torch.Tensor:
        inputs = reward_model_inputs(tokenizer, contexts, texts, max_length)
        return model(**inputs).logits[:, 0]

    # Each example is one score or one preference; minibatches mix both kinds.
    examples: list[Rating] = scores + prefs
    loss_value = float("nan")
    for epoch in range(epochs):
        order = rng.permutation(len(examples))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            chunk = [examples[i] for i in order[start : start + batch_size]]
            loss = torch.zeros(())
            s = [r for r in chunk if r.kind == SCORE]
            p = [r for r in chunk if r.kind == PREFERENCE]
            if s:
                pred = rewards([r.context for r in s], [r.text for r in s])  # type: ignore[misc]
                target = torch.tensor([r.target for r in s], dtype=pred.dtype)
                loss = loss + torch.nn.functional.mse_loss(pred, target, reduction="sum")
            if p:
                both = rewards([r.context for r in p] * 2, [r.a for r in p] + [r.b for r in p])  # type: ignore[misc]
                margin = both[: len(p)] - both[len(p) :]
                pa = torch.tensor([r.target for r in p], dtype=margin.dtype)
                # Bradley-Terry: P(a > b) = sigmoid(r(a) - r(b)); a tie pulls the margin to 0.
                bt = -(
                    pa * torch.nn.functional.logsigmoid(margin)
                    + (1 - pa) * torch.nn.functional.logsigmoid(-margin)
                )
                loss = loss + bt.sum()
            loss = loss / len(chunk)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
            count += len(chunk)
        loss_value = total / max(count, 1)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  loss {loss_value:.4f}")
    model.eval()
    accuracy = _preference_accuracy(model, tokenizer, prefs, max_length) if prefs else float("nan")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {
        "trained_by": "textgym.rewards.human.train_reward_model",
        "n_scores": len(scores),
        "n_preferences": len(prefs),
        "epochs": epochs,
        "final_loss": loss_value,
        "train_preference_accuracy": accuracy,
        "seed": seed,
    }
    (out / "textgym_reward_model.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(out, len(scores), len(prefs), loss_value, accuracy)


def _preference_accuracy(
    model: Any, tokenizer: Any, prefs: Sequence[Rating], max_length: int
) -> float:
    import torch

    from textgym.rewards.models import reward_model_inputs

    decided = [r for r in prefs if r.winner != "tie"]
    if not decided:
        return float("nan")
    with torch.inference_mode():
        inputs = reward_model_inputs(
            tokenizer,
            [r.context for r in decided] * 2,
            [r.a for r in decided] + [r.b for r in decided],  # type: ignore[operator]
            max_length,
        )
        r = model(**inputs).logits[:, 0]
    margin = (r[: len(decided)] - r[len(decided) :]).numpy()
    want = np.array([1.0 if p.winner == "a" else -1.0 for p in decided])
    return float(np.mean(np.sign(margin) == want))


# -- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str = "textgym") -> int:
    """``rate`` turns in the terminal or ``train-rm`` (alias ``train``) a reward model from
    the log. ``prog`` names the command in help and errors (``textgym`` for the console
    script, ``python -m textgym.rewards.human`` when run as a module)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rate agent turns in the terminal and train a reward model on the ratings.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rate = sub.add_parser("rate", help="show turns and record scores or preferences")
    source = rate.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", help='JSONL of {"context","text"} or {"context","a","b"}')
    source.add_argument("--env", help="generate samples from an env id, e.g. textgym/Copy-v0")
    rate.add_argument("--log", required=True, help="ratings file (JSONL, appended)")
    rate.add_argument("--mode", choices=[SCORE, PREFERENCE], default=SCORE)
    rate.add_argument("--scale", type=float, nargs=2, default=(1.0, 5.0), metavar=("LOW", "HIGH"))
    rate.add_argument("--n", type=int, default=50, help="samples to draw from --env")
    rate.add_argument("--limit", type=int, default=None, help="stop after this many ratings")
    rate.add_argument("--seed", type=int, default=0)
    train = sub.add_parser(
        "train-rm", aliases=["train"], help="train a reward model on one or more rating logs"
    )
    train.add_argument("--log", required=True, nargs="+", help="ratings file(s)")
    train.add_argument("--out", required=True, help="output directory (save_pretrained)")
    train.add_argument(
        "--base", default=None, help="model to fine-tune (default: small BERT from scratch)"
    )
    train.add_argument(
        "--tokenizer", default=None, help="tokenizer path or name (default: textgym's)"
    )
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(None if argv is None else list(argv))

    if args.command == "rate":
        samples = (
            samples_from_file(args.samples)
            if args.samples
            else samples_from_env(args.env, args.n, args.seed)
        )
        with RatingLog(args.log) as log:
            run_session(
                samples, Rater(log, scale=tuple(args.scale)), mode=args.mode, limit=args.limit
            )
        return 0
    for path in args.log:
        if not Path(path).exists():
            train.error(f"no ratings file at {path!r}; create one with `{prog} rate`.")
    result = train_reward_model(
        args.log,
        args.out,
        base=args.base,
        tokenizer=args.tokenizer,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        log=print,
    )
    # A log of scores only has no preference pairs to be accurate on (the result is NaN).
    accuracy = "n/a" if math.isnan(result.train_accuracy) else f"{result.train_accuracy:.2f}"
    print(
        f"saved {result.path} ({result.n_scores} scores, {result.n_preferences} preferences; "
        f"final loss {result.final_loss:.4f}, train preference accuracy {accuracy}). "
        f'Use it with RewardModel("{result.path}") or reward=\'reward_model("{result.path}")\'.'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m textgym.rewards.human"))
