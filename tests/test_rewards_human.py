"""Human feedback: the terminal rater, its crash-safe log, and training a reward model."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.helpers import InterruptAfter, make_ctx, run_oracle
from textgym.errors import ConfigError, UserError
from textgym.feedback.cli import main
from textgym.feedback.log import Rating, RatingLog, RatingsFileError, parse_log, read_ratings
from textgym.feedback.rater import HumanReward, Rater, run_session
from textgym.feedback.samples import samples_from_env
from textgym.feedback.train import train_reward_model
from textgym.files import WriteError
from textgym.progress import read_log
from textgym.rewards.models import RewardModel

REPO = Path(__file__).resolve().parents[1]


# -- the rater ----------------------------------------------------------------------------


def test_malformed_input_reprompts_and_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    out = io.StringIO()
    typed = "\n".join(["", "five", "9", "nan", "4", "s", "2.5", "hmm", "b", "q"]) + "\n"
    rater = Rater(log, input=io.StringIO(typed), output=out)
    samples = [
        {"context": "c1", "text": "t1"},
        {"context": "c2", "text": "t2"},
        {"context": "c3", "text": "t3"},
    ]
    assert run_session(samples, rater) == 2
    assert "not a number" in out.getvalue() and "outside 1-5" in out.getvalue()
    assert [(r.text, r.score) for r in read_ratings(log)] == [("t1", 4.0), ("t3", 2.5)]
    prefs = [{"context": "c", "a": "x", "b": "y"}]
    rater = Rater(log, input=io.StringIO("hmm\nb\n"), output=io.StringIO())
    assert run_session(prefs, rater, mode="preference") == 1
    ratings = read_ratings(log)
    assert ratings[-1].kind == "preference" and ratings[-1].winner == "b"
    assert ratings[-1].target == 0.0 and ratings[0].target == 0.75


def test_resumed_session_skips_rated_samples(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    samples = [{"context": "c", "text": f"turn number {i}"} for i in range(3)]
    run_session(samples, Rater(log, input=io.StringIO("1\n"), output=io.StringIO()))
    out = io.StringIO()
    run_session(samples, Rater(log, input=io.StringIO("2\n3\n"), output=out))
    assert "turn number 0" not in out.getvalue()
    assert [r.score for r in read_ratings(log)] == [1, 2, 3]
    assert [r.text for r in read_ratings(log)] == [s["text"] for s in samples]


def test_torn_last_line_is_skipped_and_repaired(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    with RatingLog(log) as f:
        f.append(Rating("score", "c", "id1", text="t", score=3.0))
    with open(log, "a") as f:
        f.write('{"kind": "score", "cont')  # a kill mid-write
    assert len(read_ratings(log)) == 1
    with RatingLog(log) as f:  # reopening cuts the torn tail
        f.append(Rating("score", "c", "id2", text="u", score=4.0))
    assert [r.sample_id for r in read_ratings(log)] == ["id1", "id2"]
    log.write_text(log.read_text() + "garbage\n" + log.read_text())
    with pytest.raises(ValueError, match=r":3: not a rating"):
        read_ratings(log)


def test_human_reward_in_an_env(tmp_path: Path) -> None:
    import gymnasium as gym

    reward = HumanReward(tmp_path / "h.jsonl", input=io.StringIO("x\n5\n"), output=io.StringIO())
    r, info = run_oracle(gym.make("textgym/Copy-v0", reward=reward), seed=0)
    assert r == 1.0 and info["reward_components"] == {"human": 1.0}
    assert read_ratings(tmp_path / "h.jsonl")[0].score == 5.0


def test_samples_from_env_pair_oracle_with_corruption() -> None:
    samples = list(samples_from_env("textgym/Copy-v0", 4, seed=0))
    assert len(samples) == 4
    for s in samples:
        gold = s["context"].removeprefix("copy: ")
        assert {s["a"], s["b"]} & {gold} and s["a"] != s["b"]
        assert s["text"] in (s["a"], s["b"])


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll until ``path`` has ``n`` complete lines (a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        assert proc.poll() is None, "the rater exited early"
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines")


def test_log_survives_sigkill_mid_session(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"context": f"ctx {i}", "text": f"turn {i}"}) + "\n" for i in range(6))
    )
    log = tmp_path / "ratings.jsonl"
    cmd = [sys.executable, "-m", "textgym.rewards.human", "rate", "--samples", str(samples)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stdout.txt", "w") as stdout:
        proc = subprocess.Popen(
            [*cmd, "--log", str(log)], stdin=subprocess.PIPE, stdout=stdout, text=True, env=env
        )
        try:
            assert proc.stdin is not None
            for line, n_logged in [("4\n", 1), ("oops\n7\n2\n", 2), ("s\n5\n", 3)]:
                proc.stdin.write(line)
                proc.stdin.flush()
                wait_for_lines(log, n_logged, proc)
            proc.stdin.write("3")  # typed but never confirmed with Enter
            proc.stdin.flush()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ratings = read_ratings(log)
    assert [(r.context, r.text, r.score) for r in ratings] == [
        ("ctx 0", "turn 0", 4.0),
        ("ctx 1", "turn 1", 2.0),
        ("ctx 3", "turn 3", 5.0),  # "ctx 2" was skipped
    ]
    # Replay: a new session resumes, skipping what is already rated.
    out = io.StringIO()
    sample_list = [json.loads(x) for x in samples.read_text().splitlines()]
    run_session(sample_list, Rater(log, input=io.StringIO("1\n1\n1\n"), output=out))
    assert [r.context for r in read_ratings(log)] == [
        "ctx 0",
        "ctx 1",
        "ctx 3",
        "ctx 2",
        "ctx 4",
        "ctx 5",
    ]


# -- training -----------------------------------------------------------------------------

GOOD = ["thanks", "please", "glad", "happy"]
BAD = ["bad", "wrong", "never", "hate"]
TRAIN_FILL = ["the", "order", "is", "here", "for", "your", "help", "now", "today"]
TEST_FILL = ["you", "can", "see", "it", "again", "soon"]  # held-out wording


def sentence(rng: np.random.Generator, marker: str, fill: list[str]) -> str:
    words = list(rng.choice(fill, 4))
    words.insert(int(rng.integers(5)), marker)
    return " ".join(words)


def synthetic_ratings(rng: np.random.Generator) -> list[Rating]:
    """30 preferences and 10 scores from a rater who likes polite turns."""
    ratings = []
    for i in range(30):
        good = sentence(rng, str(rng.choice(GOOD)), TRAIN_FILL)
        bad = sentence(rng, str(rng.choice(BAD)), TRAIN_FILL)
        good_first = bool(rng.random() < 0.5)
        a, b = (good, bad) if good_first else (bad, good)
        ratings.append(
            Rating("preference", "help me", f"p{i}", a=a, b=b, winner="a" if good_first else "b")
        )
    for i in range(10):
        polite = bool(rng.random() < 0.5)
        text = sentence(rng, str(rng.choice(GOOD if polite else BAD)), TRAIN_FILL)
        ratings.append(Rating("score", "help me", f"s{i}", text=text, score=5.0 if polite else 1.0))
    return ratings


def test_trained_reward_model_ranks_held_out_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    log = tmp_path / "ratings.jsonl"
    with RatingLog(log) as f:
        for rating in synthetic_ratings(rng):
            f.append(rating)
    # Through the command line, from the log, as a user would.
    assert main(["train", "--log", str(log), "--out", str(tmp_path / "rm"), "--epochs", "25"]) == 0
    # --out is a run directory like every learner's; the model is its final_model/.
    run = tmp_path / "rm"
    assert {p.name for p in run.iterdir()} == {
        ".lock", "config.json", "progress.csv", "final_model", "report.json",
    }  # fmt: skip
    summary = json.loads((run / "final_model" / "textgym_reward_model.json").read_text())
    assert summary["n_preferences"] == 30 and summary["n_scores"] == 10
    assert json.loads((run / "report.json").read_text())["n_preferences"] == 30
    assert json.loads((run / "config.json").read_text())["ratings"] == [str(log)]
    assert len(read_log(run)["rm/loss"]) == 25
    rm = RewardModel(run / "final_model")
    pairs = [
        (
            sentence(rng, str(rng.choice(GOOD)), TEST_FILL),
            sentence(rng, str(rng.choice(BAD)), TEST_FILL),
        )
        for _ in range(40)
    ]
    scores = [
        v
        for v, _ in rm.batch(
            [make_ctx(t, prompt="help me", answer=None) for pair in pairs for t in pair]
        )
    ]
    accuracy = np.mean([scores[2 * i] > scores[2 * i + 1] for i in range(len(pairs))])
    assert accuracy >= 0.9, f"held-out ranking accuracy {accuracy:.2f}"


def test_training_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No ratings"):
        train_reward_model([], tmp_path / "rm")
    with pytest.raises(RatingsFileError, match="No ratings file at .*missing.jsonl"):
        main(["train", "--log", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "rm")])
    assert not (tmp_path / "rm").exists()


def test_rlhf_loop_end_to_end(tmp_path: Path) -> None:
    """Rate env samples (a scripted rater prefers the gold turn), train, use as env reward."""
    import gymnasium as gym

    samples = list(samples_from_env("textgym/Copy-v0", 12, seed=0))
    answers = "".join(
        "a\n" if s["a"] == s["context"].removeprefix("copy: ") else "b\n" for s in samples
    )
    log = tmp_path / "ratings.jsonl"
    rater = Rater(log, input=io.StringIO(answers), output=io.StringIO())
    assert run_session(samples, rater, mode="preference") == 12
    result = train_reward_model(log, tmp_path / "rm", epochs=3, hidden=32, layers=1)
    assert result.n_preferences == 12 and result.path == tmp_path / "rm" / "final_model"
    env = gym.make("textgym/Copy-v0", reward=f'exact_match + reward_model("{result.path}")')
    r, info = run_oracle(env, seed=0)
    comps = info["reward_components"]
    assert set(comps) == {"exact_match", "reward_model"}
    assert r == pytest.approx(comps["exact_match"] + comps["reward_model"])


# -- robustness: torn lines, interrupts, concurrent raters, validation, atomic saves --------


def fd_targets() -> list[str]:
    """The files this process has open, to prove a file was closed (psutil: any OS)."""
    return [f.path for f in psutil.Process().open_files()]


def write_log(path: Path, ratings: list[Rating]) -> None:
    with RatingLog(path) as log:
        for rating in ratings:
            log.append(rating)


def torn_non_ascii(path: Path) -> None:
    """Append half of a non-ASCII rating, cut inside a multi-byte character (kill -9)."""
    line = Rating("score", "café", "torn", text="naïve ñandú", score=2.0).to_json().encode()
    cut = line.index("ï".encode()) + 1  # between the two bytes of "ï"
    with open(path, "ab") as f:
        f.write(line[:cut])


def test_train_rm_reads_a_torn_non_ascii_line_as_the_rater_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ratings.jsonl"
    write_log(
        log, [Rating("score", "ctx é", f"s{i}", text=f"ünïcode {i}", score=4.0) for i in range(3)]
    )
    torn_non_ascii(log)
    # One reader for both: parse_log finds the torn tail; read_ratings skips it and says so.
    contents = parse_log(log.read_bytes(), log)
    assert len(contents.ratings) == 3 and contents.torn
    assert [r.sample_id for r in read_ratings(log)] == ["s0", "s1", "s2"]
    assert "torn last line" in capsys.readouterr().err
    status = main(["train-rm", "--log", str(log), "--out", str(tmp_path / "rm"), "--epochs", "1"])
    summary = tmp_path / "rm" / "final_model" / "textgym_reward_model.json"
    assert status == 0 and json.loads(summary.read_text())["n_scores"] == 3
    # The rater reads the same log the same way, then cuts the tail before its next append.
    run_session(
        [{"context": "c", "text": "new"}],
        Rater(log, input=io.StringIO("5\n"), output=io.StringIO()),
    )
    assert [r.sample_id for r in read_ratings(log)][-1] != "torn" and len(read_ratings(log)) == 4
    assert log.read_bytes().endswith(b"\n")


def test_a_whole_record_without_its_newline_is_kept_by_reader_and_rater(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    last = Rating("score", "c", "last", text="t", score=3.0)
    log.write_text(
        Rating("score", "c", "first", text="t", score=1.0).to_json() + "\n" + last.to_json()
    )
    assert [r.sample_id for r in read_ratings(log)] == ["first", "last"]
    write_log(log, [Rating("score", "c", "next", text="t", score=5.0)])  # reopen + append
    assert [r.sample_id for r in read_ratings(log)] == ["first", "last", "next"]


def test_a_tail_torn_by_another_rater_is_cut_before_the_next_append(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    rater_log = RatingLog(log)  # opened first, as a long session would be
    rater_log.append(Rating("score", "c", "a", text="t", score=1.0))
    with open(log, "ab") as other:  # a second rater, killed mid-write
        other.write(b'{"kind": "score", "cont')
    rater_log.append(Rating("score", "c", "b", text="t", score=2.0))
    assert [r.sample_id for r in read_ratings(log)] == ["a", "b"]


def test_two_raters_appending_to_one_log_lose_nothing(tmp_path: Path) -> None:
    log = tmp_path / "ratings.jsonl"
    code = (
        "import sys\n"
        "from textgym.rewards.human import Rating, RatingLog\n"
        "log = RatingLog(sys.argv[1])\n"
        "for i in range(150):\n"
        "    log.append(Rating('score', 'ç' * 300, f'{sys.argv[2]}{i}', text='ü' * 2000, score=3.0))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(log), name], env=env) for name in "ab"
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ids = [r.sample_id for r in read_ratings(log)]
    assert sorted(ids) == sorted(f"{n}{i}" for n in "ab" for i in range(150))


def test_ctrl_c_mid_rating_keeps_every_rating_and_closes_the_log(tmp_path: Path) -> None:
    import gymnasium as gym

    log = tmp_path / "h.jsonl"
    reward = HumanReward(log, input=InterruptAfter("4\n"), output=io.StringIO())
    env = gym.make("textgym/Copy-v0", reward=reward)
    for seed in (0, 1):
        env.reset(seed=seed)
        try:
            while not any(env.step(env.unwrapped.oracle_action())[2:4]):
                pass
        except KeyboardInterrupt:
            assert seed == 1
    assert [r.score for r in read_ratings(log)] == [4.0]
    assert str(log) not in fd_targets()  # nothing left open after the interrupt
    env.close()
    reward.close()


def test_rating_log_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(RatingsFileError, match="is a directory"):
        RatingLog(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="ratings log"):
        RatingLog(tmp_path / "file" / "ratings.jsonl")
    with pytest.raises(ConfigError, match="--scale"):
        Rater(tmp_path / "never.jsonl", scale=(5, 1))
    assert not (tmp_path / "never.jsonl").exists()  # refused before the file was created
    (tmp_path / "bad.jsonl").write_bytes(b'{"kind": "score"}\n\xff\xfe\n')
    with pytest.raises(RatingsFileError, match=r"bad.jsonl:1: not a rating"):
        read_ratings(tmp_path / "bad.jsonl")


BASE = {"epochs": 1, "lr": 1e-3, "batch_size": 4, "seed": 0}


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("epochs", 0, "--epochs"),
        ("epochs", -3, "--epochs"),
        ("epochs", 2.5, "--epochs"),
        ("lr", float("nan"), "--lr"),
        ("lr", float("inf"), "--lr"),
        ("lr", 0.0, "--lr"),
        ("lr", -1e-3, "--lr"),
        ("batch_size", 0, "--batch-size"),
        ("seed", -1, "--seed"),
        ("seed", 2**64, "--seed"),
        ("hidden", 0, "hidden"),
        ("max_length", 1, "max_length"),
    ],
)
def test_training_config_is_checked_before_any_work(
    field: str, value: object, flag: str, tmp_path: Path
) -> None:
    ratings = [Rating("score", "c", "s", text="t", score=3.0)]
    with pytest.raises(ConfigError, match=flag) as exc:
        train_reward_model(ratings, tmp_path / "rm", **{**BASE, field: value})
    assert isinstance(exc.value, UserError) and isinstance(exc.value, ValueError)
    assert not (tmp_path / "rm").exists()


def test_an_interrupted_save_leaves_no_half_model_and_the_next_run_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import PreTrainedTokenizerBase

    ratings = [Rating("score", "c", f"s{i}", text=f"t {i}", score=1.0 + i) for i in range(4)]
    out = tmp_path / "rm"
    save_tokenizer = PreTrainedTokenizerBase.save_pretrained

    def killed(self: object, directory: object, *args: object, **kwargs: object) -> None:
        (Path(str(directory)) / "tokenizer.json").write_text('{"half": ')  # a partial write
        raise KeyboardInterrupt  # Ctrl-C in the middle of the save

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        train_reward_model(ratings, out, epochs=1, hidden=32, layers=1)
    # No half model, no report, no temporary directory: the run is simply not finished...
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json", "progress.csv"]
    # ...so the same --out trains again (a killed run has no checkpoint to resume from).
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", save_tokenizer)
    result = train_reward_model(ratings, out, epochs=1, hidden=32, layers=1)
    assert len(read_log(out)["rm/loss"]) == 1  # the killed run's curve was replaced
    RewardModel(result.path)  # loads
    # Finished, it is replaced by the next run in the same --out (there is no --resume):
    # the old model loads until the new one is renamed over it.
    old = {p.name: p.read_bytes() for p in result.path.iterdir()}
    saved = PreTrainedTokenizerBase.save_pretrained

    def while_saving(self: object, directory: object, *args: object, **kwargs: object) -> None:
        assert not (out / "report.json").exists()  # unfinished from the start of the run
        assert {p.name: p.read_bytes() for p in result.path.iterdir()} == old
        saved(self, directory, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", while_saving)
    again = train_reward_model(ratings, out, epochs=2, hidden=32, layers=1, seed=1)
    assert json.loads((out / "report.json").read_text())["epochs"] == 2
    assert len(read_log(out)["rm/loss"]) == 2  # one curve, the new run's
    assert not list(out.glob(".*.tmp"))
    RewardModel(again.path)


def test_out_with_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    ratings = [Rating("score", "c", "s", text="t", score=3.0)]
    with pytest.raises(ConfigError, match="holds other files"):
        train_reward_model(ratings, tmp_path, epochs=1)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_any_hidden_size_trains(tmp_path: Path) -> None:
    """hidden=100 asked BERT for 3 heads, which do not divide 100."""
    ratings = [Rating("score", "c", f"s{i}", text=f"t {i}", score=1.0 + i) for i in range(3)]
    result = train_reward_model(ratings, tmp_path / "rm", epochs=1, hidden=100, layers=1)
    assert result.n_scores == 3 and (result.path / "textgym_reward_model.json").exists()
