"""The LM accuracy benchmark's report: lifts with CIs over seeds, calibration, the tables."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import pytest

from agents.common.evaluation import abstention_threshold, calibration
from benchmarks import lm_report
from benchmarks.cli import ResultsFileError
from benchmarks.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]


def run(env_id: str, algo: str, seed: int, before: float, after: float, **extra) -> dict:
    """A run record as ``benchmarks.lm_accuracy.run_one`` writes it (the fields read here)."""
    return {
        "env_id": env_id, "algo": algo, "seed": seed, "split": "test", "updates": 100,
        "capped": False, "train_seconds": 120.0, "tokens_per_second": 1500.0,
        "before": {"eval/success_rate": before}, "after": {"eval/success_rate": after},
        "curve": [{"update": 0, "success_rate": before}, {"update": 100, "success_rate": after}],
        **extra,
    }  # fmt: skip


def test_mean_ci_has_bounds_only_over_two_runs() -> None:
    assert mean_ci([0.5]) == {"mean": 0.5, "ci_low": None, "ci_high": None, "n": 1}
    assert mean_ci([None, None])["mean"] is None
    two = mean_ci([0.2, None, 0.4])
    assert two["n"] == 2 and two["mean"] == pytest.approx(0.3)
    assert two["ci_low"] == pytest.approx(0.2) and two["ci_high"] == pytest.approx(0.4)
    spread = mean_ci([0.1, 0.3, 0.2, 0.6, 0.4])
    assert 0.1 <= spread["ci_low"] < spread["mean"] < spread["ci_high"] <= 0.6


def test_lift_table_rows_are_means_with_cis_in_table_order() -> None:
    results = [
        run("textgym/Dialogue-v1", "grpo", 1, 0.30, 0.40),
        run("textgym/Reasoning-v1", "grpo", 2, 0.20, 0.70, updates=80, capped=True),
        run("textgym/Reasoning-v1", "grpo", 1, 0.20, 0.60),
        run("textgym/Reasoning-v1", "ppo", 1, 0.20, 0.50),
    ]
    rows = lm_report.lift_rows(results)
    assert [(r["env_id"], r["algo"]) for r in rows] == [
        ("textgym/Reasoning-v1", "grpo"), ("textgym/Reasoning-v1", "ppo"),
        ("textgym/Dialogue-v1", "grpo"),
    ]  # fmt: skip
    grpo = rows[0]
    assert grpo["seeds"] == [1, 2] and grpo["updates"] == [100, 80] and grpo["capped"] == 1
    assert grpo["lift"]["mean"] == pytest.approx(0.45)
    assert grpo["lift"]["ci_low"] == pytest.approx(0.4)
    assert grpo["lift"]["ci_high"] == pytest.approx(0.5)
    lines = lm_report.markdown(results).splitlines()
    assert lines[0] == (
        "| env | algorithm | seeds | updates | before RL | after RL | lift, points [95% CI] "
        "| train s/run |"
    )
    assert lines[2] == (
        "| textgym/Reasoning-v1 | GRPO | 2 | 80-100 (1 capped) | 20.0% | 65.0% "
        "| **+45.0** [+40.0, +50.0] | 120 |"
    )
    assert lines[3] == "| textgym/Reasoning-v1 | PPO | 1 | 100 | 20.0% | 50.0% | **+30.0** | 120 |"
    detail = lm_report.markdown(results, detail=True).splitlines()
    assert detail[2].endswith("| +40.0 / +50.0 | 1,500 |")
    # Runs recorded before the cap was: unknown, not "0 capped".
    old = [{k: v for k, v in r.items() if k != "capped"} for r in results]
    assert lm_report.lift_rows(old)[0]["capped"] is None
    assert lm_report.markdown([]) == ""


def episode(text: str, success: bool = False, truncated: bool = False) -> SimpleNamespace:
    """What calibration reads of an agents.common.rollout.Episode: its turns and flags."""
    return SimpleNamespace(turns=[text], truncated=truncated, success=success)


def test_calibration_counts_abstentions_as_the_reward_does() -> None:
    episodes = [
        episode("2+3=5. answer: 5", success=True),
        episode("answer: 7"),
        episode("I don't know."),
        episode("i do not know"),
        episode("i don't know", truncated=True),  # cut off: never abstained, scored wrong
        episode("i don't know. answer: 4"),  # an answer after all
    ]
    cal = calibration(episodes, threshold=1 / 3).as_dict()
    assert cal == {
        "episodes": 6, "coverage": pytest.approx(4 / 6), "selective_accuracy": 0.25,
        "accuracy": pytest.approx(1 / 6), "abstention_rate": pytest.approx(2 / 6),
        "threshold": pytest.approx(1 / 3),
    }  # fmt: skip
    silent = calibration([episode("i don't know")] * 3, threshold=0.5)
    assert silent.coverage == 0.0 and silent.selective_accuracy is None
    with pytest.raises(ValueError, match="at least one episode"):
        calibration([], threshold=0.5)


@pytest.mark.parametrize(
    ("reward", "threshold"),
    [
        (None, 1 / 3),  # the family's correctness + 0.1*format: +1.1, +0.1, -0.4
        ("correctness(abstain=0.25)", 0.5),
        ("correctness + 0.3*abstention", 0.8 / 1.5),
        ("clip(correctness, -0.2, 1)", 0.2 / 1.2),
        ("numeric_match", None),  # abstaining pays nothing more than a wrong answer
    ],
)
def test_abstention_threshold_is_read_from_the_env_reward(
    reward: str | None, threshold: float | None
) -> None:
    kwargs = {} if reward is None else {"reward": reward}
    got = abstention_threshold(gym.make("textgym/Reasoning-v1", **kwargs))
    assert got == (None if threshold is None else pytest.approx(threshold))


@pytest.mark.parametrize(
    ("reward", "threshold"),
    [
        (None, 1 / 3),  # score_answer + 0.1*answer_format: +1.1, +0.1, -0.4
        ("score_answer(wrong=-1.0, partial=False) + 0.1*answer_format", 0.5),
    ],
)
def test_graded_correctness_prices_abstention_too(reward: str | None, threshold: float) -> None:
    # No skip without the data extra: the README installs it, and gym.make names it if absent.
    kwargs = {} if reward is None else {"reward": reward}
    got = abstention_threshold(gym.make("textgym/ReasoningGym-Strings-v0", **kwargs))
    assert got == pytest.approx(threshold)


@pytest.mark.parametrize("env_id", ["textgym/CustomerService-v1", "textgym/Dialogue-v1"])
def test_envs_without_a_price_on_abstaining_have_no_threshold(env_id: str) -> None:
    assert abstention_threshold(gym.make(env_id)) is None


def test_calibration_table_has_cis_over_seeds() -> None:
    def cal(coverage: float, right: float) -> dict:
        return {"episodes": 512, "coverage": coverage, "selective_accuracy": right / coverage,
                "accuracy": right, "abstention_rate": 1 - coverage, "threshold": 1 / 3}  # fmt: skip

    results = [
        run("textgym/Reasoning-v1", "grpo", 1, 0.2, 0.6, calibration=cal(0.8, 0.6)),
        run("textgym/Reasoning-v1", "grpo", 2, 0.2, 0.5, calibration=cal(1.0, 0.5)),
        run("textgym/CustomerService-v1", "grpo", 1, 0.5, 0.7, calibration=None),
    ]
    (row,) = lm_report.calibration_rows(results)
    assert row["n"] == 2 and row["threshold"] == pytest.approx(1 / 3)
    assert row["coverage"]["mean"] == pytest.approx(0.9)
    lines = lm_report.calibration_markdown(results).splitlines()
    assert lines[2] == (
        "| textgym/Reasoning-v1 | GRPO | 2 | 90.0% [80.0, 100.0] | 62.5% [50.0, 75.0] "
        "| 55.0% [50.0, 60.0] | 10.0% [0.0, 20.0] | 0.333 |"
    )
    assert lm_report.calibration_markdown(results[2:]) == ""


def test_update_docs_rewrites_only_between_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "README.md"
    monkeypatch.setattr(lm_report, "DOCS", {doc: ("lm-accuracy", "lm-calibration")})
    results = [run("textgym/Reasoning-v1", "grpo", 1, 0.2, 0.6)]
    doc.write_text("# title\n<!-- lm-accuracy:begin -->\nold\n<!-- lm-accuracy:end -->\n")
    with pytest.raises(ResultsFileError, match="lm-calibration:begin"):
        lm_report.update_docs(results)
    assert "old" in doc.read_text()  # nothing written before every marker was found
    begin, end = lm_report.markers("lm-calibration")
    doc.write_text(doc.read_text() + f"text\n{begin}\n{end}\ntail\n")
    lm_report.update_docs(results)
    text = doc.read_text()
    assert text.startswith("# title\n") and text.endswith(
        "text\n" + begin + "\n\n" + end + "\ntail\n"
    )
    assert lm_report.block(text, "lm-accuracy") == lm_report.markdown(results)
    lm_report.update_docs(results)
    assert doc.read_text() == text  # idempotent
    rendered = lm_report.render_blocks(results)
    assert lm_report.block(rendered, "lm-accuracy-detail") == lm_report.markdown(results, True)


def test_docs_tables_are_the_committed_measurement() -> None:
    # The committed reference run: a missing file is a failure, not a reason to skip.
    results = json.loads((ROOT / "benchmarks/results/lm_accuracy.json").read_text())["results"]
    for path, names in lm_report.DOCS.items():
        text = path.read_text()
        for name in names:
            begin, end = lm_report.markers(name)
            shown = lm_report.block(text, name)
            assert shown is not None, f"{path} lacks {begin} ... {end} around its table"
            assert shown == lm_report.BLOCKS[name](results).strip(), (
                f"{path}: run `python -m benchmarks.lm_accuracy --render-only --readme`"
            )


def test_runs_on_the_open_model_get_their_own_tables() -> None:
    strings = "textgym/ReasoningGym-Strings-v0"
    results = [
        run("textgym/Reasoning-v1", "grpo", 1, 0.2, 0.6),  # from before models were recorded
        run("textgym/Reasoning-v1", "ppo", 1, 0.2, 0.5, model="default"),
        run(strings, "grpo", 1, 0.3, 0.5, model="default-open"),
    ]
    closed = lm_report.BLOCKS["lm-accuracy"](results)
    opened = lm_report.BLOCKS["lm-accuracy-open"](results)
    assert "Reasoning-v1 | GRPO" in closed and "Reasoning-v1 | PPO" in closed
    assert strings not in closed
    assert strings in opened and "Reasoning-v1" not in opened
    assert lm_report.BLOCKS["lm-accuracy-open-detail"](results) == lm_report.markdown(
        results[2:], detail=True
    )
    assert lm_report.BLOCKS["lm-accuracy-open"](results[:2]) == ""  # no open runs: empty


def test_ceiling_table_is_the_committed_measurement() -> None:
    # The docs' claim (Reasoning-v0 above 80% held-out, by update count, within the 10-minute
    # cap) is the committed run's: the table is rendered from it, and it holds for the mean.
    ceiling = json.loads((ROOT / "benchmarks/results/ceiling_reasoning.json").read_text())
    results = ceiling["results"]
    shown = lm_report.block((ROOT / "docs/readme/agents.md").read_text(), "lm-ceiling")
    assert shown == lm_report.markdown(results, detail=True).strip(), (
        "run `python -m benchmarks.lm_accuracy --render-only --out "
        "benchmarks/results/ceiling_reasoning.json` and paste its table"
    )
    assert len(results) == 5 and not any(r["capped"] for r in results)
    assert len({r["updates"] for r in results}) == 1
    [row] = lm_report.lift_rows(results)
    assert row["after"]["mean"] >= 0.80
