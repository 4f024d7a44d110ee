"""textgym under the RL libraries people run: SB3 (every algorithm), CleanRL, Tianshou, TorchRL.

One documented way each, with ``AllowedTokens`` (the action space is the task's tokens) or
``MaskInObservation`` (the mask as an observation key). Each library is skipped only when
it is not installed; CI installs them all (the ``integrations`` extra).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn
from torch.distributions import Categorical

from agents.sb3 import TokenFeaturesExtractor, policy_kwargs
from textgym.wrappers import AllowedTokens, MaskInObservation

ENV_ID = "textgym/Copy-Tiny-v0"
#: The uniform policy over Copy-Tiny's 4 allowed tokens succeeds 1/16 of the time (the
#: right word of three, then the end of turn).
RANDOM_SUCCESS = 1 / 16


def _allowed() -> gym.Env:
    return AllowedTokens(gym.make(ENV_ID))


def _allowed_ids() -> set[int]:
    return set(np.flatnonzero(gym.make(ENV_ID).unwrapped.action_masks()).tolist())


# -- stable-baselines3 and sb3-contrib: every algorithm on AllowedTokens ------------------------

#: On-policy settings for a few thousand steps over 8 envs (SB3's defaults assume millions).
ON_POLICY = {"n_steps": 32, "batch_size": 64, "n_epochs": 4, "learning_rate": 3e-3}
#: Off-policy settings over one env. A turn cut off at its token budget has no continuation,
#: so it is not bootstrapped (handle_timeout_termination=False): bootstrapping there lets
#: DQN's values for repeating a word climb above the reward of ending the turn.
OFF_POLICY = {
    "learning_starts": 200,
    "buffer_size": 5_000,
    "batch_size": 64,
    "target_update_interval": 100,
    "exploration_fraction": 0.3,
    "learning_rate": 1e-3,
    "replay_buffer_kwargs": {"handle_timeout_termination": False},
}
#: Per algorithm, seed 0: (class, policy, n_envs, algorithm kwargs, policy_kwargs() arguments
#: and extra policy kwargs, timesteps). Each reached 100% greedy success on seeds 0, 1, 2.
SB3_RECIPES: dict[str, tuple[Any, str, int, dict[str, Any], dict[str, Any], int]] = {
    "PPO": (PPO, "MultiInputPolicy", 8, ON_POLICY, {}, 2048),
    "MaskablePPO": (MaskablePPO, "MultiInputPolicy", 8, ON_POLICY, {}, 2048),
    "A2C": (A2C, "MultiInputPolicy", 8, {"n_steps": 2, "learning_rate": 1e-3}, {}, 4096),
    "RecurrentPPO": (
        RecurrentPPO,
        "MultiInputLstmPolicy",
        8,
        {**ON_POLICY, "n_epochs": 10, "learning_rate": 1e-3},
        {"lstm_hidden_size": 32},
        3072,
    ),
    # The mean encoder: as good here, and half the cost of a GRU per gradient step.
    "DQN": (DQN, "MultiInputPolicy", 1, OFF_POLICY, {"encoder": "mean"}, 2048),
    "QRDQN": (
        QRDQN,
        "MultiInputPolicy",
        1,
        OFF_POLICY,
        {"encoder": "mean", "n_quantiles": 25},
        2048,
    ),
}
EXTRACTOR_ARGS = ("encoder", "embed_dim", "features_dim", "net_arch")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SB3_RECIPES))
def test_sb3_algorithm_learns_copy_tiny_with_allowed_tokens(name: str) -> None:
    cls, policy, n_envs, kwargs, extra, timesteps = SB3_RECIPES[name]
    chosen = policy_kwargs(**{k: v for k, v in extra.items() if k in EXTRACTOR_ARGS})
    chosen.update({k: v for k, v in extra.items() if k not in EXTRACTOR_ARGS})
    env = make_vec_env(_allowed, n_envs=n_envs, seed=0)
    model = cls(policy, env, policy_kwargs=chosen, seed=0, device="cpu", **kwargs)
    # The head is over the 4 allowed tokens: QRDQN on the full vocabulary holds
    # vocab x n_quantiles outputs per net (53M parameters for 2,048 tokens x 200 quantiles).
    assert sum(p.numel() for p in model.policy.parameters()) < 1_000_000
    model.learn(total_timesteps=timesteps)
    returns, _ = evaluate_policy(
        model,
        make_vec_env(_allowed, n_envs=1, seed=123),
        n_eval_episodes=50,
        return_episode_rewards=True,
    )
    success = float(np.mean(np.asarray(returns) >= 1.0))  # exact_match: 1 on success
    assert success >= 0.9, (name, success, RANDOM_SUCCESS)


def test_vec_normalize_is_refused_with_the_fix() -> None:
    # VecNormalize(norm_obs=True), its default, turns input_ids and attention_mask into
    # floats around 0 (the space is left as it was): the first forward says so and names
    # the fix, where the embedding used to raise a bare IndexError.
    normalized = VecNormalize(DummyVecEnv([_allowed]))
    model = PPO("MultiInputPolicy", normalized, policy_kwargs=policy_kwargs(), device="cpu")
    with pytest.raises(ValueError, match=r"not token ids.*VecNormalize\(venv, norm_obs=False\)"):
        model.learn(64)
    # A space whose ids are floats already is refused when the model is built.
    space = gym.make(ENV_ID).observation_space
    floats = gym.spaces.Dict(
        {
            "input_ids": gym.spaces.Box(-10, 10, space["input_ids"].shape, np.float32),
            "attention_mask": space["attention_mask"],
        }
    )
    with pytest.raises(TypeError, match=r"integer token observations.*norm_obs=False"):
        TokenFeaturesExtractor(floats)
    # Token ids as floats (what SB3 hands over from a plain env) are fine.
    obs, _ = gym.make(ENV_ID).reset(seed=0)
    TokenFeaturesExtractor(space)({k: torch.as_tensor(v).float()[None] for k, v in obs.items()})
    # The fix: rewards normalized, observations left alone.
    fixed = VecNormalize(DummyVecEnv([_allowed]), norm_obs=False)
    PPO(
        "MultiInputPolicy",
        fixed,
        policy_kwargs=policy_kwargs(),
        n_steps=32,
        batch_size=32,
        device="cpu",
    ).learn(64)


# -- CleanRL: a ppo.py-style loop over gymnasium's SyncVectorEnv --------------------------------


class MaskedAgent(nn.Module):
    """CleanRL's discrete PPO agent, on embedded token ids, with masked logits."""

    def __init__(self, space: gym.spaces.Dict, n_actions: int) -> None:
        super().__init__()
        vocab, length = int(space["input_ids"].high.max()) + 1, space["input_ids"].shape[0]
        self.embed = nn.Embedding(vocab, 8)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(8 * length, 64), nn.Tanh())
        self.actor, self.critic = nn.Linear(64, n_actions), nn.Linear(64, 1)

    def forward(
        self, obs: dict[str, torch.Tensor], action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.body(self.embed(obs["input_ids"]))
        logits = self.actor(hidden).masked_fill(~obs["action_mask"], -1e9)
        dist = Categorical(logits=logits)
        action = dist.sample() if action is None else action
        return action, dist.log_prob(action), dist.entropy(), self.critic(hidden).squeeze(-1)


def _tensors(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(obs[k]) for k in ("input_ids", "action_mask")}


@pytest.mark.slow
def test_cleanrl_style_ppo_learns_copy_tiny() -> None:
    n_envs, n_steps, iterations, epochs, gamma, lam, clip = 8, 16, 12, 8, 0.99, 0.95, 0.2
    # SAME_STEP autoreset: the step that ends an episode returns the next one's first
    # observation, which is what CleanRL's loop (written for gym 0.26) expects.
    envs = gym.vector.SyncVectorEnv(
        [lambda: MaskInObservation(AllowedTokens(gym.make(ENV_ID))) for _ in range(n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    torch.manual_seed(0)
    agent = MaskedAgent(envs.single_observation_space, int(envs.single_action_space.n))
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3)
    obs, _ = envs.reset(seed=0)
    done = np.zeros(n_envs, dtype=bool)
    for _ in range(iterations):
        rollout: list[tuple[Any, ...]] = []
        for _ in range(n_steps):
            with torch.no_grad():
                action, logp, _, value = agent(_tensors(obs))
            step_obs = _tensors(obs)
            obs, reward, terminated, truncated, _ = envs.step(action.numpy())
            rollout.append((step_obs, action, logp, value, torch.as_tensor(reward).float(), done))
            done = terminated | truncated
        with torch.no_grad():
            next_value = agent(_tensors(obs))[3]
        advantages, last = torch.zeros(n_steps, n_envs), torch.zeros(n_envs)
        for t in reversed(range(n_steps)):  # GAE, as in CleanRL's ppo.py
            next_done = done if t == n_steps - 1 else rollout[t + 1][5]
            nonterminal = 1.0 - torch.as_tensor(next_done).float()
            if t < n_steps - 1:
                next_value = rollout[t + 1][3]
            delta = rollout[t][4] + gamma * next_value * nonterminal - rollout[t][3]
            advantages[t] = last = delta + gamma * lam * nonterminal * last
        returns = (advantages + torch.stack([r[3] for r in rollout])).flatten()
        batch = {k: torch.cat([r[0][k] for r in rollout]) for k in ("input_ids", "action_mask")}
        actions, old_logp = torch.cat([r[1] for r in rollout]), torch.cat([r[2] for r in rollout])
        adv = advantages.flatten()
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(epochs):
            _, logp, entropy, value = agent(batch, actions)
            ratio = (logp - old_logp).exp()
            policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
            loss = policy_loss + 0.5 * ((value - returns) ** 2).mean() - 0.01 * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    # Greedy evaluation on fresh seeds.
    env, wins = MaskInObservation(AllowedTokens(gym.make(ENV_ID))), 0
    for seed in range(1_000, 1_050):
        obs, _ = env.reset(seed=seed)
        done_one = False
        while not done_one:
            batch = {k: torch.as_tensor(v)[None] for k, v in _tensors(obs).items()}
            with torch.no_grad():
                logits = agent.actor(agent.body(agent.embed(batch["input_ids"])))
            action = int(logits.masked_fill(~batch["action_mask"], -1e9).argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            done_one = terminated or truncated
        wins += reward >= 1.0
    assert wins / 50 >= 0.8, (wins, RANDOM_SUCCESS)


# -- Tianshou: DummyVectorEnv and Collector ---------------------------------------------------


def test_tianshou_sees_the_allowed_tokens_and_collects_episodes() -> None:
    pytest.importorskip("tianshou")
    # Imported here: Tianshou is optional (the integrations extra).
    from tianshou.algorithm.random import MARLRandomDiscreteMaskedOffPolicyAlgorithm
    from tianshou.data import Collector, ReplayBuffer
    from tianshou.env import DummyVectorEnv

    # AllowedTokens: Tianshou's workers read the spaces from env.unwrapped, which is the
    # wrapper, so random collection samples from Discrete(4) and stays in range.
    assert DummyVectorEnv([_allowed, _allowed]).action_space == [gym.spaces.Discrete(4)] * 2
    # One env and a plain ReplayBuffer: a VectorReplayBuffer spends ~5 s compiling numba.
    venv = DummyVectorEnv([_allowed])
    policy = MARLRandomDiscreteMaskedOffPolicyAlgorithm.Policy(venv.action_space[0])
    collector = Collector(policy, venv, ReplayBuffer(200))
    stats = collector.collect(n_episode=8, random=True, reset_before_collect=True)
    stored = collector.buffer[collector.buffer.sample_indices(0)]  # every stored step
    assert stats.n_collected_episodes == 8 and len(stored) == stats.n_collected_steps
    assert set(stored.act.tolist()) <= {0, 1, 2, 3}

    # The mask convention (batch.obs.mask) over the whole vocabulary: Tianshou's masked
    # random policy writes only allowed token ids, and episodes end.
    venv = DummyVectorEnv([lambda: MaskInObservation(gym.make(ENV_ID), key="mask")])
    assert "mask" in venv.observation_space[0].spaces
    policy = MARLRandomDiscreteMaskedOffPolicyAlgorithm.Policy(venv.action_space[0])
    collector = Collector(policy, venv, ReplayBuffer(200))
    stats = collector.collect(n_episode=8, reset_before_collect=True)
    stored = collector.buffer[collector.buffer.sample_indices(0)]
    assert stats.n_collected_episodes == 8 and stored.done.sum() == 8
    assert set(stored.act.tolist()) <= _allowed_ids()


# -- TorchRL: GymEnv and GymWrapper -------------------------------------------------------------


def test_torchrl_gym_env_and_wrapper_with_the_mask() -> None:
    pytest.importorskip("torchrl")
    # Imported here: TorchRL is optional (the integrations extra).
    from torchrl.envs import GymEnv, GymWrapper, TransformedEnv
    from torchrl.envs.transforms import ActionMask
    from torchrl.envs.utils import check_env_specs

    # A textgym id as is; frame_skip works because textgym's unknown-argument TypeError
    # keeps "unexpected keyword argument 'frameskip'", which TorchRL falls back on.
    env = GymEnv(ENV_ID, frame_skip=2)
    check_env_specs(env)
    # ActionMask over the vocabulary: random actions honor the observation's mask.
    env = TransformedEnv(
        GymWrapper(MaskInObservation(gym.make(ENV_ID)), categorical_action_encoding=True),
        ActionMask(),
    )
    check_env_specs(env)
    torch.manual_seed(0)
    rollout = env.rollout(40, break_when_any_done=False)
    assert set(rollout["action"].tolist()) <= _allowed_ids()
    assert int(rollout["next", "done"].sum()) >= 5
    # Or the shrunken action space itself.
    env = GymWrapper(_allowed(), categorical_action_encoding=True)
    check_env_specs(env)
    rollout = env.rollout(20, break_when_any_done=False)
    assert set(rollout["action"].tolist()) <= {0, 1, 2, 3}
    assert int(rollout["next", "done"].sum()) >= 3
    # Batched: TorchRL takes a Gymnasium vector env whose autoreset is DISABLED (it resets
    # finished sub-envs itself, with options={"reset_mask": ...}).
    venv = gym.make_vec(
        ENV_ID,
        4,
        vectorization_mode="sync",
        wrappers=[AllowedTokens, MaskInObservation],
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
    )
    env = TransformedEnv(GymWrapper(venv, categorical_action_encoding=True), ActionMask())
    check_env_specs(env)
    rollout = env.rollout(10, break_when_any_done=False)
    assert rollout.batch_size == (4, 10) and int(rollout["next", "done"].sum()) >= 8
