"""The multi-turn rollout benchmark and the env-share profile: exact counts, committed results.

The quick variants run on a tiny GPT-2 whose turns end after a few tokens; nothing here
asserts a timing (the machine is shared), only counts and the agreement of the committed
JSON with the committed tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import textgym
from benchmarks import env_share
from benchmarks import multiturn_throughput as mt
from textgym.wrappers import TurnLevel

RESULTS = Path(mt.__file__).parent / "results"

# TRL 1.16 reads `is_gradient_checkpointing`, which transformers 5.2+ deprecates: TRL's to
# rename, not ours (as in test_integration_trl.py).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`(is_)?gradient_checkpointing\w*` is deprecated:FutureWarning"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 1-layer GPT-2 for the default tokenizer whose turns end after a few tokens: a
    constant last hidden state that only the end-of-turn embedding is aligned with."""
    tokenizer = textgym.default_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=256,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[tokenizer.eos_token_id, 0] = 8.0
    path = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(path)
    return str(path)


def test_returning_user_holds_the_conversation_to_n_turns():
    # The oracle answers every question, so Dialogue's own user would leave after two turns.
    env = TurnLevel(gym.make(mt.ENV_ID, **mt.env_kwargs(6, 512)))
    env.reset(seed=3)
    turns, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.oracle_turn())
        turns += 1
        done = terminated or truncated
    assert turns == 6 and terminated and not truncated


def test_quick_run_counts_are_exact_and_textgym_prefills_once(tiny_model, tmp_path):
    status = mt.main(
        ["--quick", "--model", tiny_model, "--out", str(tmp_path), "--threads", "1",
         "--no-progress"]
    )  # fmt: skip
    assert status == 0
    result = json.loads((tmp_path / f"{mt.NAME}.json").read_text())
    assert (tmp_path / f"{mt.NAME}.md").read_text() == mt.markdown(result) + "\n"
    assert (tmp_path / f"{mt.NAME}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["turns"]: r for r in result["rows"]}
    assert sorted(rows) == [2, 4]
    for n, row in rows.items():
        for side in mt.SIDES:
            cell = row[side]
            counts = cell["counts"]
            # Every episode lasted exactly n agent turns (no turn overran its budget).
            assert cell["truncated_share"] == 0 and cell["agent_turns_mean"] == n
            assert counts["episodes"] == result["batch"] and counts["generated"] > 0
            # What the hook counted is what the design implies, token for token: textgym
            # feeds each non-agent token once, TRL re-feeds the conversation every turn.
            assert cell["prefill_exact"], (n, side, counts)
            assert counts["decode"] >= counts["generated"] - counts["turns"]
            assert counts["positions"] >= counts["prefill"] + counts["decode"]
    tg = [rows[n]["textgym"]["prefill_per_generated"] for n in (2, 4)]
    trl = [rows[n]["trl"]["prefill_per_generated"] for n in (2, 4)]
    assert tg[1] <= 1.25 * tg[0]  # flat (the opening is amortised over more turns)
    assert trl[1] > trl[0] and trl[1] > tg[1]  # grows with the conversation


def test_committed_multiturn_results_agree_with_their_table():
    result = json.loads((RESULTS / f"{mt.NAME}.json").read_text())
    assert (RESULTS / f"{mt.NAME}.md").read_text() == mt.markdown(result) + "\n"
    assert (RESULTS / f"{mt.NAME}.png").exists()
    rows = result["rows"]
    assert [r["turns"] for r in rows] == [2, 4, 8, 16]
    assert result["model"] == "default"
    for r in rows:
        for side in mt.SIDES:
            c = r[side]["counts"]
            assert c["generated"] > 0 and c["prefill"] >= c["expected_prefill"] > 0
            assert r[side]["prefill_per_generated"] == round(c["prefill"] / c["generated"], 3)
        assert r["trl"]["prefill_exact"]
        assert r["textgym"]["prefill_per_generated"] < r["trl"]["prefill_per_generated"]
    # textgym feeds each token the agent did not write exactly once (no cache rebuild, no
    # re-prefill), and that count is flat in the number of turns.
    assert all(r["textgym"]["prefill_exact"] and r["textgym"]["reprefill_share"] == 0 for r in rows)
    design = [r["textgym"]["counts"]["expected_prefill"] / r["textgym"]["counts"]["generated"]
              for r in rows]  # fmt: skip
    assert max(design) <= 1.25 * min(design)
    trl = [r["trl"]["prefill_per_generated"] for r in rows]
    assert trl == sorted(trl) and trl[-1] > 3 * trl[0]  # the whole conversation, every turn


def test_env_share_times_the_env_and_its_user(tiny_model, tmp_path):
    trainer = env_share.make_trainer("ppo", mt.ENV_ID, tiny_model, 4, str(tmp_path / "run"), 1)
    try:
        clock = env_share.Clock()
        env_share.instrument(trainer, clock)
        start = clock.snapshot()
        metrics = trainer.train_step()
        assert clock.snapshot() != start
    finally:
        trainer.close()
    assert clock.env_calls > 1 and clock.user_calls > 0
    assert 0 < clock.user < clock.env < metrics["perf/seconds"]


def test_committed_env_share_agrees_with_its_table():
    result = json.loads((RESULTS / f"{env_share.NAME}.json").read_text())
    assert (RESULTS / f"{env_share.NAME}.md").read_text() == env_share.markdown(result) + "\n"
    assert result["model"] == "default"
    for r in result["results"]:
        assert 0 <= r["user_share"] <= r["env_share"] < 1
        assert r["meets_goal"] == (r["env_share"] <= result["goal"])
        # The user answers at least every turn end of the episodes kept.
        assert r["user_calls_per_update"] >= r["kept_turns_per_update"] or not r["user_share"]


def test_readme_shows_the_committed_multiturn_and_env_share_tables() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    for name in ("multiturn_throughput.md", "env_share.md"):
        assert (root / "benchmarks" / "results" / name).read_text().strip() in readme, name
