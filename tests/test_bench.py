"""The benchmark harness end to end with a micro budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks import compare
from benchmarks.runner import RunResult, RunSpec, run_all

ARGS = [
    "--envs",
    "textgym/Reasoning-Tiny-v0",
    "--algos",
    "random",
    "q_learning",
    "oracle",
    "--seeds",
    "0",
    "1",
    "--budget",
    '{"tabular_timesteps": 3000, "eval_episodes": 20}',
    "--no-progress",
]


def scores(out: Path) -> list[tuple]:
    rows = json.loads((out / "results.json").read_text())["results"]
    return [
        (
            r["env_id"],
            r["algo"],
            r["success_mean"],
            r["ci_low"],
            r["ci_high"],
            r["iqm"],
            r["return_mean"],
        )
        for r in rows
    ]


def test_harness_writes_every_output_and_reproduces(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert compare.main([*ARGS, "--out", str(a)]) == 0
    for name in ("results.json", "results.csv", "results.md", "curves.png", "scores.png"):
        assert (a / name).stat().st_size > 0, name
    rows = {r[1]: r for r in scores(a)}
    assert set(rows) == {"random", "q_learning", "oracle"}
    assert rows["oracle"][2] == 1.0
    assert rows["random"][2] < rows["q_learning"][2]
    for r in rows.values():
        assert r[3] <= r[2] <= r[4]  # the mean lies inside its CI
    table = (a / "results.md").read_text()
    assert "| textgym/Reasoning-Tiny-v0 | q_learning |" in table

    # The same seeds reproduce the same numbers.
    assert compare.main([*ARGS, "--out", str(b)]) == 0
    assert scores(a) == scores(b)


def test_lm_results_are_reproducible_by_update_count(tmp_path: Path) -> None:
    # A fixed number of updates, not of seconds: the same seed gives the same numbers
    # however busy the machine (the minutes only cap a slow one).
    args = ["--envs", "textgym/Reasoning-Easy-v1", "--algos", "grpo", "--seeds", "3", "--budget",
            '{"lm_updates": 2, "lm_minutes": 10, "eval_episodes": 8}', "--no-progress"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert compare.main([*args, "--out", str(a)]) == 0
    assert compare.main([*args, "--out", str(b)]) == 0
    assert scores(a) == scores(b)
    (run,) = json.loads((a / "results.json").read_text())["results"]
    assert run["budget"]["lm_updates"] == 2
    (result,) = [json.loads(p.read_text()) for p in a.rglob("result.json")]
    assert result["capped"] is False  # every update ran


def test_an_lm_run_stopped_by_the_minutes_records_capped(tmp_path: Path) -> None:
    args = ["--envs", "textgym/Reasoning-Easy-v1", "--algos", "grpo", "--seeds", "3", "--budget",
            '{"lm_updates": 3, "lm_minutes": 1e-9, "eval_episodes": 8}', "--no-progress"]  # fmt: skip
    assert compare.main([*args, "--out", str(tmp_path)]) == 0
    (result,) = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert result["capped"] is True


def test_parallel_runs_give_the_numbers_of_sequential_ones(tmp_path: Path) -> None:
    # Every run seeds itself and fixes its thread count, so --jobs changes only the wall time
    # (PPO, whose reductions round differently on two threads, is the sensitive case).
    args = ["--envs", "textgym/Reasoning-Tiny-v0", "--algos", "q_learning", "ppo", "--seeds",
            "0", "1", "--budget", '{"tabular_timesteps": 2000, "eval_episodes": 8, '
            '"lm_updates": 2, "lm_minutes": 10}', "--no-progress"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert compare.main([*args, "--out", str(a)]) == 0
    assert compare.main([*args, "--out", str(b), "--jobs", "2"]) == 0
    assert scores(a) == scores(b)
    for run in json.loads((b / "results.json").read_text())["results"]:
        assert run["budget"]["lm_threads"] == 1


def _fails(spec: RunSpec) -> RunResult:
    raise RuntimeError(f"run {spec.seed} failed")


def _sleeps(spec: RunSpec) -> RunResult:
    time.sleep(0.5)
    return RunResult.of(spec, (0.0, 0.0), time.perf_counter())


def test_a_failed_parallel_run_stops_the_queue(tmp_path: Path) -> None:
    # The failure surfaces at once; the queued runs are cancelled, not all played first.
    specs = [RunSpec("e", "fail" if s == 0 else "sleep", s, {}, tmp_path / str(s))
             for s in range(12)]  # fmt: skip
    with pytest.raises(RuntimeError, match="run 0 failed"):
        run_all(specs, {"fail": _fails, "sleep": _sleeps}, progress=False, jobs=2)
    done = [s for s in range(12) if (tmp_path / str(s) / "result.json").exists()]
    assert len(done) < 11, done


def test_finished_runs_are_skipped_on_rerun(tmp_path: Path) -> None:
    args = [*ARGS, "--out", str(tmp_path)]
    args.remove("q_learning")  # random and oracle only: fast
    assert compare.main(args) == 0
    done = tmp_path / "runs" / "Reasoning-Tiny-v0__random__0" / "result.json"
    record = json.loads(done.read_text())
    record["success_rate"] = 0.123  # a marker: a rerun must reuse, not recompute, this run
    done.write_text(json.dumps(record))
    assert compare.main(args) == 0
    rows = {r[1]: r for r in scores(tmp_path)}
    assert (
        abs(
            rows["random"][2]
            - (
                0.123
                + json.loads(
                    (tmp_path / "runs" / "Reasoning-Tiny-v0__random__1" / "result.json").read_text()
                )["success_rate"]
            )
            / 2
        )
        < 1e-9
    )


def test_an_interrupted_run_restarts_from_scratch(tmp_path: Path) -> None:
    args = [*ARGS, "--out", str(tmp_path), "--seeds", "0"]
    args.remove("q_learning")
    stale = tmp_path / "runs" / "Reasoning-Tiny-v0__random__0"
    stale.mkdir(parents=True)
    (stale / "progress.csv").write_text("step,time,key,value\n999,0.0,stale,1.0\n")
    assert compare.main(args) == 0
    assert (stale / "result.json").exists()
    log = stale / "progress.csv"  # the random agent logs nothing: the stale log must be gone
    assert not log.exists() or "stale" not in log.read_text()


def test_lm_accuracy_combines_parallel_runs(tmp_path: Path) -> None:
    from benchmarks import lm_accuracy, lm_report

    def run(algo: str, env_id: str, seed: int, before: float, after: float) -> dict:
        curve = [
            {"update": 0, "train_seconds": 0.0, "success_rate": before},
            {"update": 10, "train_seconds": 30.0, "success_rate": after},
        ]
        return {
            "algo": algo, "env_id": env_id, "seed": seed, "split": "test", "train_seconds": 600.0,
            "updates": 10, "capped": False, "tokens_per_second": 1234.0,
            "before": {"eval/success_rate": before}, "after": {"eval/success_rate": after},
            "curve": curve,
        }  # fmt: skip

    parts = []
    for i, runs in enumerate(
        [
            [run("ppo", "textgym/Reasoning-v1", 1, 0.2, 0.6)],
            [run("ppo", "textgym/Reasoning-v1", 2, 0.2, 0.5)],
            [run("grpo", "textgym/CustomerService-v1", 1, 0.2, 0.6)],
        ]
    ):
        path = tmp_path / f"part{i}.json"
        path.write_text(json.dumps({"command": f"cmd {i}", "machine": {"threads": 1},
                                    "results": runs}))  # fmt: skip
        parts.append(str(path))
    out = tmp_path / "lm_accuracy.json"
    assert lm_accuracy.main(["--combine", *parts, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    table = lm_report.markdown(merged["results"], detail=True).splitlines()
    # The headline env first; the two seeds of two parts are one row with its CI.
    assert table[2] == (
        "| textgym/Reasoning-v1 | PPO | 2 | 10 | 20.0% | 55.0% | **+35.0** [+30.0, +40.0] | 600 "
        "| +40.0 / +30.0 | 1,234 |"
    )
    assert table[3].startswith("| textgym/CustomerService-v1 | GRPO | 1 |")
    assert [(r["env_id"], r["algo"], r["seed"], r["benchmark_command"])
            for r in merged["results"]] == [
        ("textgym/CustomerService-v1", "grpo", 1, "cmd 2"),
        ("textgym/Reasoning-v1", "ppo", 1, "cmd 0"),
        ("textgym/Reasoning-v1", "ppo", 2, "cmd 1"),
    ]  # fmt: skip
    assert merged["summary"] == lm_report.lift_rows(merged["results"])
    assert merged["calibration"] == []  # no run measured one
    assert out.with_suffix(".png").stat().st_size > 0
    assert out.with_suffix(".md").read_text() == lm_report.render_blocks(merged["results"])

    # A run in two parts would count as two seeds: refused, nothing written.
    before = out.read_text()
    assert lm_accuracy.main(["--combine", parts[0], parts[0], "--out", str(out)]) == 2
    assert out.read_text() == before

    # --render-only re-renders the tables and plot of an earlier result, and no JSON.
    out.with_suffix(".md").unlink()
    assert lm_accuracy.main(["--render-only", "--out", str(out)]) == 0
    assert out.with_suffix(".md").read_text() == lm_report.render_blocks(merged["results"])
    assert out.read_text() == before


#: Timings and paths: what may differ between two runs of the same seeds.
UNTIMED = {"train_seconds", "tokens_per_second", "wall_seconds", "run_dir"}


def untimed(result: dict) -> dict:
    """A run's record without its timings (its curve's included)."""
    out = {k: v for k, v in result.items() if k not in UNTIMED}
    out["curve"] = [{k: v for k, v in p.items() if k != "train_seconds"} for p in result["curve"]]
    return out


@pytest.fixture
def tiny_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reasoning's GRPO recipe on 4 rows: a run of seconds."""
    from benchmarks import lm_accuracy

    recipe = dict(num_envs=4, group_size=2, learning_rate=1e-4, kl_coef=0.0)
    monkeypatch.setitem(lm_accuracy.RECIPES, ("grpo", "textgym/Reasoning"), recipe)


def test_lm_accuracy_gives_the_same_numbers_for_the_same_seeds(
    tmp_path: Path, tiny_recipe: None
) -> None:
    from benchmarks import lm_accuracy

    def bench(name: str) -> dict:
        out = tmp_path / f"{name}.json"
        args = ["--algos", "grpo", "--envs", "textgym/Reasoning-v1", "--seeds", "3",
                "--updates", "2", "--eval-every", "1", "--eval-episodes", "8", "--threads", "1",
                "--runs", str(tmp_path / name), "--out", str(out)]  # fmt: skip
        assert lm_accuracy.main(args) == 0
        return json.loads(out.read_text())

    a, b = bench("a"), bench("b")
    (run,) = a["results"]
    assert run["updates"] == run["total_updates"] == 2 and run["capped"] is False
    assert [p["update"] for p in run["curve"]] == [0, 1, 2]
    assert "--total-updates 2 --time-budget 1800" in run["command"]
    # The calibration replays the final evaluation: its accuracy is that success rate.
    cal = run["calibration"]
    assert cal["episodes"] == 8 and cal["threshold"] == pytest.approx(1 / 3)
    assert cal["accuracy"] == run["after"]["eval/success_rate"]
    assert cal["coverage"] + cal["abstention_rate"] == pytest.approx(1.0)
    assert [untimed(r) for r in a["results"]] == [untimed(r) for r in b["results"]]
    assert a["calibration"] == b["calibration"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in UNTIMED} for r in rows]  # noqa: E731
    assert strip(a["summary"]) == strip(b["summary"])


def test_lm_accuracy_records_a_run_stopped_by_the_time_cap(
    tmp_path: Path, tiny_recipe: None
) -> None:
    from benchmarks.lm_accuracy import run_one

    report = run_one(
        "grpo", "textgym/Reasoning-v1", seed=0, time_budget=1e-6, eval_every=0, threads=1,
        run_root=tmp_path, model="default", total_updates=3, eval_episodes=4,
    )  # fmt: skip
    # The cap is checked before each update: the first one runs, then the cap stops it.
    assert report["updates"] == 1 and report["capped"] is True
    assert report["total_updates"] == 3 and report["time_budget"] == 1e-6


def test_throughput_reports_ratios_and_a_profile() -> None:
    from benchmarks import throughput

    (row,) = throughput.measure_envs(["textgym/Copy-v0"], steps=512, num_envs=8, repeats=1)
    assert row["single_ratio"] > 0 and row["vector_ratio"] > 0
    assert "| textgym/Copy-v0 |" in throughput.markdown([row])
    shares = throughput.profile_vector("textgym/Copy-v0", num_envs=8, steps=100)
    assert set(throughput.PROFILE_PARTS) < set(shares)
    assert abs(sum(shares.values()) - 1.0) < 0.01
    assert shares["autoreset (draw the next problem, write its opening)"] > 0


def test_step_costs_split_the_vector_step_into_its_parts() -> None:
    from benchmarks import throughput

    costs = throughput.vector_step_costs("textgym/Copy-v0", num_envs=8, steps=600, quiet_steps=50)
    # Copy-v0 under random actions: 5 agent tokens (max_new_tokens) then the autoreset step,
    # so each of the 8 rows ends a turn and starts an episode once every 6 steps.
    assert 8 / 6 - 0.2 < costs["turn_ends_per_step"] < 8 / 6 + 0.2
    assert 8 / 6 - 0.2 < costs["episode_starts_per_step"] < 8 / 6 + 0.2
    assert costs["step_us"] > 0
    # The fitted parts add up to the mean of the steps they were fitted on.
    assert costs["quiet_steps"] >= 50
    assert abs(costs["fit_mean_error_us"]) < 0.2 * costs["fitted_steps_mean_us"]
    (row,) = throughput.measure_step_costs(["textgym/Copy-v0"], 8, 300, quiet_steps=20)
    assert row["cartpole_step_us"] > 0 and row["token_step_ratio"] > 0
    assert "| textgym/Copy-v0 |" in throughput.costs_markdown([row])
    # The 1.0 budget: CartPole's mean step (scaled by the share of rows that take an action,
    # the env's over CartPole's), less the token step, shared by the turn ends.
    rows = (8 - row["episode_starts_per_step"]) / (8 - row["cartpole_episode_starts_per_step"])
    budget = (row["cartpole_mean_step_us"] * rows - row["step_us"]) / row["turn_ends_per_step"]
    assert row["budget_per_turn_end_us"] == pytest.approx(budget, abs=0.01)
    assert row["least_mean_step_us"] >= row["step_us"]
    assert "| textgym/Copy-v0 |" in throughput.budget_markdown([row])


def test_turn_floor_times_every_scored_turn() -> None:
    from benchmarks import throughput

    floor = throughput.turn_floor("textgym/Copy-v0", num_envs=4, steps=60)
    # 4 rows, a turn end every 6 steps (5 tokens, then the autoreset step): 40 turns.
    assert 36 <= floor["turns_timed"] <= 44
    assert floor["decode_us"] > 0 and floor["context_us"] > 0


def test_readme_speed_tables_are_the_committed_measurement() -> None:
    import json
    from pathlib import Path

    from benchmarks import throughput

    root = Path(__file__).resolve().parents[1]
    report = json.loads((root / "benchmarks/results/throughput.json").read_text())
    readme = (root / "README.md").read_text()
    assert throughput.markdown(report["envs"]) in readme
    assert throughput.costs_markdown(report["vector_step_costs"]) in readme
    assert throughput.budget_markdown(report["vector_step_costs"]) in readme
    written = (root / "benchmarks/results/throughput.md").read_text()
    assert written == throughput.report_markdown(report)


def test_readme_trainer_table_is_the_committed_measurement() -> None:
    import json
    from pathlib import Path

    from benchmarks import trainer_throughput

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks/results/lm_trainer_throughput.json").read_text())
    assert trainer_throughput.markdown(result) in (root / "README.md").read_text()


def test_trainer_throughput_runs_every_contender_against_trl() -> None:
    # The `bench` extra's code path: TRL's GRPOTrainer really trains, on the same prompts,
    # beside the raw loop and textgym's GRPO (tiny batch: a smoke run, not a measurement).
    import warnings

    from benchmarks import trainer_throughput

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own, on newer transformers
        result = trainer_throughput.measure(
            batch=4, group=2, steps=1, warmup=0, repeats=1, contenders=("raw", "trl", "grpo")
        )
    for contender in ("raw", "trl", "grpo"):
        [run] = result["runs"][contender]
        assert run["tokens"] > 0 and run["seconds"] > 0, (contender, run)
    assert set(result["ratios"]) == {"grpo/trl", "grpo/raw", "trl/raw"}
    assert result["trl"] == trainer_throughput._version("trl")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--updates", "0"], "--updates must be a positive integer, got 0"),
        (["--eval-episodes", "0"], "--eval-episodes must be a positive integer, got 0"),
        (["--render-only"], "--render-only: {tmp}/lm.json does not exist"),
        (["--readme"], "lacks the <!-- lm-accuracy:begin --> / <!-- lm-accuracy:end --> markers"),
    ],
)
def test_lm_accuracy_refuses_bad_flags_before_any_run(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from benchmarks import lm_accuracy, lm_report

    doc = tmp_path / "README.md"
    doc.write_text("no markers here\n")
    monkeypatch.setattr(lm_report, "DOCS", {doc: ("lm-accuracy",)})
    out = ["--out", str(tmp_path / "lm.json"), "--runs", str(tmp_path / "runs")]
    assert lm_accuracy.main([*out, *argv]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()  # refused before the first run started
