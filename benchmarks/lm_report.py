"""What the LM accuracy benchmark reports: lifts and calibration over seeds, tables, plot.

Every number here is computed from the runs in ``benchmarks/results/lm_accuracy.json``
(:mod:`benchmarks.lm_accuracy` writes them), so the README's tables can be checked against
that file: each table sits in a document between its markers (:data:`DOCS`, :func:`markers`)
and must equal :data:`BLOCKS` rendered from the committed runs.

Per (env, algorithm): held-out success before and after RL, the lift (after - before) with
its 95% percentile-bootstrap CI over seeds, the updates each seed ran (and how many runs the
time cap stopped early), and the mean training seconds. Per (env, algorithm) on an env whose
reward prices abstention (the Reasoning family): coverage, accuracy on the answered episodes,
accuracy, abstention rate, each with its CI over seeds, and the reward-optimal threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.cli import ResultsFileError
from benchmarks.render import panels, save_png, table
from benchmarks.stats import group_by, mean, mean_ci
from textgym.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]

#: Row order of the tables: the headline envs first.
ENV_ORDER = (
    "textgym/Reasoning-v1", "textgym/CustomerService-v1", "textgym/Dialogue-v1",
    "textgym/Reasoning-v0", "textgym/CustomerService-v0", "textgym/Dialogue-v0",
    "textgym/ReasoningGym-Strings-v0", "textgym/ReasoningGym-Lists-v0",
    "textgym/ReasoningGym-Lists-Abstain-v0",
    "textgym/ReasoningGym-Arithmetic-v0",
)  # fmt: skip
#: The model name a run on the open default model records (``agents.lm.default_model``);
#: its runs get their own tables, as they start from another model.
OPEN_MODEL = "default-open"
ALGO_NAMES = {"eval-only": "none (pre-trained)", "grpo": "GRPO", "ppo": "PPO",
              "reinforce": "REINFORCE"}  # fmt: skip
#: The calibration shares of a run (:class:`agents.common.evaluation.Calibration`).
CALIBRATION_KEYS = ("coverage", "selective_accuracy", "accuracy", "abstention_rate")

Results = Sequence[dict[str, Any]]


def _order(key: tuple[str, str]) -> tuple[int, str, int, str]:
    env, algo = key
    rank = ENV_ORDER.index(env) if env in ENV_ORDER else len(ENV_ORDER)
    algos = list(ALGO_NAMES)
    return rank, env, algos.index(algo) if algo in algos else len(algos), algo


def _groups(results: Results) -> list[tuple[tuple[str, str], list[dict[str, Any]]]]:
    """Runs by (env, algorithm) in table order, each group's runs by seed."""
    groups = group_by(results, lambda r: (r["env_id"], r["algo"]))
    return [(k, sorted(groups[k], key=lambda r: r["seed"])) for k in sorted(groups, key=_order)]


def _success(run: dict[str, Any], when: str) -> float:
    return float(run[when]["eval/success_rate"])


# -- summaries (the JSON) -------------------------------------------------------------------


def lift_rows(results: Results) -> list[dict[str, Any]]:
    """One row per (env, algorithm): success before and after, the lift and its CI over seeds.

    ``capped`` counts the runs the time cap stopped before their updates (``None`` when the
    runs predate the record); ``lift`` is in success-rate units (0.1 = 10 points).
    """
    rows = []
    for (env_id, algo), runs in _groups(results):
        before = [_success(r, "before") for r in runs]
        after = [_success(r, "after") for r in runs]
        known = [r["capped"] for r in runs if "capped" in r]
        rows.append(
            {
                "env_id": env_id,
                "algo": algo,
                "seeds": [r["seed"] for r in runs],
                "n": len(runs),
                "updates": [r["updates"] for r in runs],
                "capped": sum(map(bool, known)) if len(known) == len(runs) else None,
                "before": mean_ci(before),
                "after": mean_ci(after),
                "lift": mean_ci([a - b for a, b in zip(after, before, strict=True)]),
                "train_seconds": mean(r["train_seconds"] for r in runs),
                "tokens_per_second": mean(r.get("tokens_per_second", 0.0) for r in runs),
            }
        )
    return rows


def calibration_rows(results: Results) -> list[dict[str, Any]]:
    """One row per (env, algorithm) whose runs carry a calibration (the final greedy
    evaluation on an env that prices abstention): each share's mean and CI over seeds."""
    rows = []
    for (env_id, algo), runs in _groups([r for r in results if r.get("calibration")]):
        cals = [r["calibration"] for r in runs]
        row: dict[str, Any] = {
            "env_id": env_id, "algo": algo, "seeds": [r["seed"] for r in runs], "n": len(runs),
            # A property of the env's reward: the same for every run of one env.
            "threshold": cals[0]["threshold"], "episodes": cals[0]["episodes"],
        }  # fmt: skip
        for key in CALIBRATION_KEYS:
            row[key] = mean_ci(c[key] for c in cals)
        rows.append(row)
    return rows


def summarize(results: Results) -> dict[str, list[dict[str, Any]]]:
    """The summaries the result JSON carries next to its runs."""
    return {"summary": lift_rows(results), "calibration": calibration_rows(results)}


# -- tables ---------------------------------------------------------------------------------


def _percent(ci: dict[str, Any]) -> str:
    """``71.3% [69.1, 73.0]`` (the CI only over two seeds or more), ``-`` for no value."""
    if ci["mean"] is None:
        return "-"
    if ci["ci_low"] is None:
        return f"{100 * ci['mean']:.1f}%"
    return f"{100 * ci['mean']:.1f}% [{100 * ci['ci_low']:.1f}, {100 * ci['ci_high']:.1f}]"


def _points(ci: dict[str, Any]) -> str:
    """``**+48.8** [+48.0, +49.6]``: a lift in points with its CI (two seeds or more)."""
    text = f"**{100 * ci['mean']:+.1f}**"
    if ci["ci_low"] is not None:
        text += f" [{100 * ci['ci_low']:+.1f}, {100 * ci['ci_high']:+.1f}]"
    return text


def _updates(row: dict[str, Any]) -> str:
    """``100``, or ``87-100 (1 capped)`` when the time cap stopped some runs early."""
    low, high = min(row["updates"]), max(row["updates"])
    text = str(low) if low == high else f"{low}-{high}"
    if row["capped"]:
        text += f" ({row['capped']} capped)"
    return text


def markdown(results: Results, detail: bool = False) -> str:
    """The lift table (README); ``detail`` adds the per-seed lifts and tokens/s (docs).

    Empty when there are no runs.
    """
    header = ["env", "algorithm", "seeds", "updates", "before RL", "after RL",
              "lift, points [95% CI]", "train s/run"]  # fmt: skip
    if detail:
        header += ["lift per seed", "generated tokens/s"]
    rows = []
    for row, (_, runs) in zip(lift_rows(results), _groups(results), strict=True):
        cells = [
            row["env_id"], ALGO_NAMES.get(row["algo"], row["algo"]), str(row["n"]),
            _updates(row), f"{100 * row['before']['mean']:.1f}%",
            f"{100 * row['after']['mean']:.1f}%", _points(row["lift"]),
            f"{row['train_seconds']:,.0f}",
        ]  # fmt: skip
        if detail:
            lifts = [100 * (_success(r, "after") - _success(r, "before")) for r in runs]
            cells.append(" / ".join(f"{x:+.1f}" for x in lifts))
            cells.append(f"{row['tokens_per_second']:,.0f}")
        rows.append(cells)
    return table(header, rows, "llrrrrrr" + "rr" * detail) if rows else ""


def calibration_markdown(results: Results) -> str:
    """The calibration table: what the final greedy evaluation answered, and how well.

    Coverage is the share answered (not abstained), selective accuracy the share right of
    those, accuracy the share right of all; abstaining pays when the chance of being right is
    below the threshold (the env's reward decides it). Empty when no run carries one.
    """
    header = ["env", "algorithm", "seeds", "coverage", "selective accuracy", "accuracy",
              "abstention rate", "abstain below P(right)"]  # fmt: skip
    rows = [
        [
            row["env_id"],
            ALGO_NAMES.get(row["algo"], row["algo"]),
            str(row["n"]),
            *(_percent(row[key]) for key in CALIBRATION_KEYS),
            f"{row['threshold']:.3f}",
        ]
        for row in calibration_rows(results)
    ]
    return table(header, rows, "llrrrrrr") if rows else ""


def on_model(results: Results, open_model: bool) -> list[dict[str, Any]]:
    """The runs that started from the open default model (``open_model``), or the others
    (the closed default model; runs from before models were recorded are those)."""
    return [r for r in results if (r.get("model") == OPEN_MODEL) == open_model]


def _table(render: Callable[..., str], open_model: bool, **kwargs: Any) -> Callable[..., str]:
    return lambda results: render(on_model(results, open_model), **kwargs)


#: Every table a document shows, by its marker name: the closed default model's lifts, then
#: the open default model's (on reasoning-gym's generators), then calibration of both.
BLOCKS: dict[str, Callable[[Results], str]] = {
    "lm-accuracy": _table(markdown, False),
    "lm-accuracy-detail": _table(markdown, False, detail=True),
    "lm-accuracy-open": _table(markdown, True),
    "lm-accuracy-open-detail": _table(markdown, True, detail=True),
    "lm-calibration": calibration_markdown,
}
#: Which tables each document shows (between the markers of each).
DOCS: dict[Path, tuple[str, ...]] = {
    ROOT / "README.md": ("lm-accuracy", "lm-accuracy-open", "lm-calibration"),
    ROOT / "docs" / "readme" / "agents.md": (
        "lm-accuracy-detail", "lm-accuracy-open-detail", "lm-calibration",
    ),
}  # fmt: skip


def markers(name: str) -> tuple[str, str]:
    """The comments a document puts around the table ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block(text: str, name: str) -> str | None:
    """What ``text`` has between the markers of ``name`` (stripped), ``None`` without them."""
    begin, end = markers(name)
    if begin not in text or end not in text.split(begin, 1)[1]:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def render_blocks(results: Results) -> str:
    """Every table between its markers: what the documents paste (``<out>.md``)."""
    parts = []
    for name, render in BLOCKS.items():
        body = render(results)
        parts.append("\n".join([markers(name)[0], *([body] if body else []), markers(name)[1]]))
    return "\n\n".join(parts) + "\n"


# -- terminal and plot ----------------------------------------------------------------------


def print_summary(results: Results) -> None:
    """One line per run, then the tables."""
    for r in results:
        b, a = _success(r, "before"), _success(r, "after")
        capped = " (time cap hit)" if r.get("capped") else ""
        print(
            f"{r['algo']:>9} {r['env_id']:<28} seed {r['seed']}: {b:.3f} -> {a:.3f} "
            f"({100 * (a - b):+.1f} points) in {r['updates']} updates, "
            f"{r['train_seconds']:.0f}s{capped}"
        )
    print(markdown(results, detail=True))
    print(calibration_markdown(results))


def plot(results: Results, path: Path) -> None:
    """Held-out success rate against updates, one panel per env."""
    envs = sorted({r["env_id"] for r in results}, key=lambda e: _order((e, ""))[:2])
    fig, axes = panels(len(envs), 5.5, 4)
    for ax, env_id in zip(axes, envs, strict=True):
        runs = [r for r in results if r["env_id"] == env_id]
        for r in runs:
            xs = [p["update"] for p in r["curve"]]
            ys = [p["success_rate"] for p in r["curve"]]
            ax.plot(xs, ys, marker="o", ms=3, label=f"{r['algo']} seed {r['seed']}")
        ax.set_title(f"{env_id} (held-out {runs[0]['split']} split, greedy)")
        ax.set_xlabel("updates")
        ax.set_ylabel("success rate")
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(fig, path, dpi=120)


def check_docs() -> dict[Path, str]:
    """Every document of :data:`DOCS` with its text, each checked for its markers.

    Raises:
        ResultsFileError: a document lacks a pair of markers.
    """
    docs = {path: path.read_text(encoding="utf-8") for path in DOCS}
    for path, names in DOCS.items():
        for name in names:
            if block(docs[path], name) is None:
                begin, end = markers(name)
                raise ResultsFileError(
                    f"{path} lacks the {begin} / {end} markers; add them where the table "
                    "goes (or leave out --readme)."
                )
    return docs


def update_docs(results: Results) -> None:
    """Rewrite each table of :data:`DOCS` between its markers (``--readme``).

    Raises:
        ResultsFileError: a document lacks a pair of markers (checked in every document
            before any is written).
    """
    docs = check_docs()
    for path, names in DOCS.items():
        text = docs[path]
        for name in names:
            begin, end = markers(name)
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            text = f"{head}{begin}\n{BLOCKS[name](results)}\n{end}{tail}"
        atomic_write(path, text)
