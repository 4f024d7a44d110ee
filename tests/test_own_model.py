"""A user's own model and tokenizer: a tiny GPT-2 saved with a ChatML byte-level BPE, trained
end to end by ``textgym train`` on a single-turn and a multi-turn env."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from foreign import chatml_bpe
from transformers import GPT2Config, GPT2LMHeadModel

from agents.train import main as train_main


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a 1-layer GPT-2 and its ChatML tokenizer, as save_pretrained
    writes them (what a user's fine-tuned chat model looks like, but tiny)."""
    root = tmp_path_factory.mktemp("chat_model")
    tok = chatml_bpe()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(str(root))
    tok.save_pretrained(str(root))
    return root


@pytest.mark.parametrize(
    ("algo", "env_id"), [("grpo", "textgym/Reasoning-v0"), ("ppo", "textgym/Dialogue-v0")]
)
def test_train_a_templated_model_end_to_end(
    algo: str, env_id: str, chat_model: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = [
        "--algo", algo, "--env", env_id, "--model", str(chat_model), "--seed", "0",
        "--num-envs", "4", "--total-updates", "2", "--eval-every", "0",
        "--eval-episodes", "4", "--checkpoint-every", "1", "--run-dir", str(run_dir),
        "--no-progress", "--no-tensorboard", "--threads", "1",
    ]  # fmt: skip
    if algo == "grpo":
        args += ["--group-size", "2"]
    assert train_main(args) == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["updates"] == 2
    # No --tokenizer: the env ran on the model directory's own (templated) tokenizer.
    config = json.loads((run_dir / "config.json").read_text())
    assert config["tokenizer"] in (None, str(chat_model))
    env = gym.make(env_id, tokenizer=str(chat_model))
    assert env.unwrapped.chat.templated
    assert env.unwrapped.vocab_size == len(chatml_bpe())


def test_demonstrations_encode_as_the_env_lays_them_out() -> None:
    from agents.lm.supervised import encode_demonstration

    tok = chatml_bpe()
    env = gym.make("textgym/Dialogue-v0", tokenizer=tok)
    env.reset(seed=4)
    u = env.unwrapped
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(u.oracle_action())
        done = terminated or truncated
    record = {"turns": [{"role": t.role, "text": t.text} for t in u.turns]}
    ids, target = encode_demonstration(record, tok, u.max_length)
    # The user's closing reply is dropped; everything before it is the env's own context.
    assert ids.tolist() == u.context_ids.tolist()[: len(ids)]
    assert ids[-1] == u.chat.eot_id and target[-1] and not target[0]
