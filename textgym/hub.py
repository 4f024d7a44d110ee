"""One resolver for every model and tokenizer textgym loads: a local directory or a hub name.

Every loader (the policy, the env tokenizer, :class:`~textgym.rewards.models.RewardModel`,
:class:`~textgym.rewards.judge.LMJudge`,
:class:`~textgym.rewards.models.EmbeddingSimilarity`,
:class:`~textgym.users.lm.LMResponder`) goes through :func:`resolve` and
:func:`from_pretrained`, so they all follow one rule:

* an existing local path loads from disk;
* a name that can only be a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, a backslash, a name
  the hub would refuse, or ``dir/typo`` where ``dir`` is a local directory) and does not
  exist fails at once with "the path does not exist" (and the closest existing name);
* anything else (``gpt2``, ``openai-community/gpt2``, ``Qwen/Qwen2.5-0.5B``) is asked of the
  Hugging Face Hub; if the hub cannot be reached (offline, ``HF_HUB_OFFLINE=1``), the error
  says so and how to pass a local directory instead.

Code from a model repository never runs (``trust_remote_code`` stays off). All errors are
:class:`ModelLoadError` (an ``OSError`` and a :class:`~textgym.errors.UserError`), so the
command line prints them in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgym.errors import UserError, closest

#: A hub repo id: ``name`` or ``namespace/name`` (the rule ``huggingface_hub`` validates).
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9_.\-]+/)?[A-Za-z0-9_.\-]{1,96}$")

#: Offline, the hub cannot be asked; a local directory is the way out.
_LOCAL_HINT = (
    "To use a model without network access, download it where there is network "
    "(`hf download {name}`, or `model.save_pretrained(dir)`), copy the directory here and "
    "pass its path (e.g. ./models/my-model)."
)

#: Exceptions (by class name, as they move between huggingface_hub and httpx versions)
#: that mean the hub was not reached, not that the name is wrong.
_UNREACHABLE = {
    "LocalEntryNotFoundError",
    "OfflineModeIsEnabled",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "TimeoutException",
    "ConnectionError",
    "gaierror",
}
_NOT_FOUND = {"RepositoryNotFoundError", "RevisionNotFoundError"}


class ModelLoadError(UserError, OSError):
    """A model or tokenizer could not be loaded; the message names it and the fix."""


class ModelPathError(ModelLoadError, FileNotFoundError):
    """A local path that does not exist (or is not a model directory)."""


class HubError(ModelLoadError):
    """A hub name could not be loaded: the hub is unreachable, or has no such model."""


class NotCausalLMError(ModelLoadError, ValueError):
    """A model that is not a causal language model where one is needed (a policy)."""


@dataclass(frozen=True)
class Source:
    """Where a model comes from.

    Attributes:
        name: What to pass to ``from_pretrained``: the expanded local path, or the hub id.
        local: ``True`` for a local directory, ``False`` for a hub name.
    """

    name: str
    local: bool

    @property
    def path(self) -> Path | None:
        """The local directory, or ``None`` for a hub name."""
        return Path(self.name) if self.local else None


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a local path (so it must not be sent to the hub).

    True for names starting with ``/``, ``.``, ``~``, names with a backslash or more than one
    ``/``, and names the hub would refuse as a repo id. ``org/name`` stays a hub id even when
    a local ``org/`` folder exists (a downloaded sibling must not hide the hub).
    """
    if not name or name.startswith(("/", ".", "~")) or os.path.isabs(name):
        return True
    if "\\" in name or (os.sep != "/" and os.sep in name) or name.count("/") > 1:
        return True
    return not _REPO_ID.match(name) or "--" in name or ".." in name or name.endswith(".git")


def resolve(name_or_path: str | os.PathLike[str], what: str = "model", *, hint: str = "") -> Source:
    """Decide whether ``name_or_path`` is a local directory or a hub name, without loading.

    Args:
        name_or_path: A local path or a hub id.
        what: What is being loaded, for messages ("policy model", "tokenizer"...).
        hint: Appended to the missing-path message (e.g. how such a directory is made).

    Raises:
        ModelPathError: a path that does not exist, or a file where a directory is needed.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelPathError(
                f"The {what} {name!r} is a file; pass the directory it belongs to (written by "
                "`save_pretrained(...)`)."
            )
        return Source(str(path), local=True)
    if isinstance(name_or_path, Path) or looks_like_path(name):
        raise ModelPathError(
            f"No {what} at {name!r}: the path does not exist{_closest(path)}. Pass a directory "
            f"written by `save_pretrained(...)`{hint} or a hub name (e.g. openai-community/gpt2)."
        )
    return Source(name, local=False)


def from_pretrained(
    auto_cls: Any, name_or_path: str | os.PathLike[str], what: str = "model", *, hint: str = "",
    **kwargs: Any,
) -> Any:  # fmt: skip
    """``auto_cls.from_pretrained`` on the resolved source, with errors that say what to do.

    Args:
        auto_cls: A ``transformers`` class with ``from_pretrained`` (``AutoTokenizer``...).
        name_or_path: A local path or a hub id (see :func:`resolve`).
        what: What is being loaded, for messages.
        hint: As for :func:`resolve`.
        **kwargs: Passed to ``from_pretrained``.

    Raises:
        ModelPathError: a local path that does not exist.
        HubError: a hub name that could not be loaded (unreachable hub, unknown or gated).
        ModelLoadError: a local directory that transformers cannot load.
    """
    source = resolve(name_or_path, what, hint=hint)
    try:
        # ImportError too: a loader that needs a missing optional package (sentencepiece,
        # protobuf) says which; that is the user's to install, not a bug.
        return auto_cls.from_pretrained(source.name, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise load_error(exc, source, what, getattr(auto_cls, "__name__", "transformers")) from exc


def load_config(source: Source, what: str) -> Any:
    """The model's ``transformers`` config (a small file; from the hub for a hub name)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.name)
    except (OSError, ValueError, ImportError) as exc:
        raise load_error(exc, source, what, "AutoConfig") from exc


def load_causal_lm(
    name_or_path: str | os.PathLike[str], what: str = "policy model", *, hint: str = "",
    dtype: Any = None,
) -> Any:  # fmt: skip
    """Load a causal LM (``AutoModelForCausalLM``), refusing any other kind of model.

    The config is read first: ``AutoModelForCausalLM`` would otherwise load a BERT
    classifier as a ``BertLMHeadModel`` with a fresh random head and only a warning.

    Args:
        name_or_path: A local path or a hub id.
        what: What is being loaded, for messages.
        hint: As for :func:`resolve`.
        dtype: Parameter dtype (e.g. ``torch.float32``); ``None`` keeps transformers' default.

    Raises:
        NotCausalLMError: the model is not a causal LM.
        ModelPathError, HubError, ModelLoadError: as for :func:`from_pretrained`.
    """
    from transformers import AutoModelForCausalLM

    source = resolve(name_or_path, what, hint=hint)
    check_causal_lm(load_config(source, what), os.fspath(name_or_path), what)
    try:
        return AutoModelForCausalLM.from_pretrained(source.name, **dtype_kwargs(dtype))
    except (OSError, ValueError, ImportError) as exc:
        raise load_error(exc, source, what, "AutoModelForCausalLM") from exc


def check_causal_lm(config: Any, name: str, what: str = "policy model") -> None:
    """Raise :class:`NotCausalLMError` unless ``config`` describes a causal LM.

    A model saved by ``save_pretrained`` lists its class in ``config.architectures``; it is
    a causal LM when that class is one ``AutoModelForCausalLM`` maps to (``GPT2LMHeadModel``,
    ``Qwen2ForCausalLM``...). A config without architectures is judged by its model type.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    archs = list(getattr(config, "architectures", None) or [])
    model_type = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False):
        ok = False
    elif archs:
        ok = any(a in causal or a.endswith("ForCausalLM") for a in archs)
    else:
        ok = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not ok:
        kind = ", ".join(archs) or f"model type {model_type!r}"
        raise NotCausalLMError(
            f"The {what} {name!r} is not a causal language model ({kind}): it cannot predict "
            "the next token. Pass a causal LM (a model `AutoModelForCausalLM` loads with its "
            "own LM head, such as GPT-2, Llama or Qwen), or 'default' for textgym's model."
        )


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """The ``from_pretrained`` keyword for a parameter dtype on the installed transformers.

    ``dtype=`` replaced ``torch_dtype=`` in transformers 4.56; older versions take the
    unknown ``dtype`` as a config attribute and silently ignore it.
    """
    if dtype is None:
        return {}
    return {"dtype" if transformers_version() >= (4, 56) else "torch_dtype": dtype}


def transformers_version() -> tuple[int, ...]:
    """The installed transformers' ``(major, minor)``."""
    import transformers

    parts = re.findall(r"\d+", transformers.__version__)[:2]
    return tuple(int(p) for p in parts)


def hub_offline() -> bool:
    """Whether hub access is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    # Imported here, as transformers is: `import textgym` must stay light for tabular users.
    from huggingface_hub import constants

    if getattr(constants, "HF_HUB_OFFLINE", False):
        return True
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


# -- helpers --------------------------------------------------------------------------------


def _closest(path: Path) -> str:
    """``" (did you mean 'x'?)"`` for an existing path one typo away from ``path`` (the
    first missing part of ``path`` replaced by its closest existing sibling), or ``""``."""
    rest: list[str] = []
    while not path.parent.exists() and path.parent != path:
        rest.insert(0, path.name)
        path = path.parent
    try:
        names = [p.name for p in path.parent.iterdir()]
    except OSError:
        return ""
    for close in closest(path.name, names, n=3, cutoff=0.75):
        candidate = path.parent.joinpath(close, *rest)
        if candidate.exists():
            return f" (did you mean {str(candidate)!r}?)"
    return ""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes / contexts, innermost last."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _summary(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s message on one line (the command line prints errors in one line)."""
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_error(exc: BaseException, source: Source, what: str, loader: str) -> ModelLoadError:
    """The error to raise (``from exc``) for a failed load of ``source``, by what went wrong.

    Args:
        exc: What the loader raised.
        source: What was being loaded (:func:`resolve`).
        what: What is being loaded, for messages.
        loader: The loading class or library, for messages.
    """
    name = source.name
    if source.local:
        return ModelLoadError(
            f"Could not load the {what} from {name!r} with {loader}: {_summary(exc)}. Pass "
            "a directory written by `save_pretrained(...)`."
        )
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc))
    local = f"There is no local directory {name!r} either{_closest(Path(name))}."
    if hub_offline() or names & _UNREACHABLE or "couldn't connect" in text.lower():
        why = " (offline mode: HF_HUB_OFFLINE is set)" if hub_offline() else ""
        return HubError(
            f"Could not load the {what} {name!r}: the Hugging Face Hub could not be reached"
            f"{why} and the model is not in the local cache. {local} "
            + _LOCAL_HINT.format(name=name)
        )
    if "GatedRepoError" in names:
        return HubError(
            f"The {what} {name!r} on the Hugging Face Hub is gated: accept its terms on "
            "huggingface.co and log in (`hf auth login`), or pass a local directory."
        )
    if names & _NOT_FOUND or "not a valid model identifier" in text:
        return HubError(
            f"There is no {what} {name!r} on the Hugging Face Hub (or it is private: log in "
            f"with `hf auth login`). {local} Check the spelling, or pass a local directory "
            "written by `save_pretrained(...)`."
        )
    return HubError(
        f"Could not load the {what} {name!r} from the Hugging Face Hub with {loader}: "
        f"{_summary(exc)}. {local}"
    )


__all__ = [
    "HubError",
    "ModelLoadError",
    "ModelPathError",
    "NotCausalLMError",
    "Source",
    "check_causal_lm",
    "dtype_kwargs",
    "from_pretrained",
    "hub_offline",
    "load_causal_lm",
    "load_config",
    "load_error",
    "looks_like_path",
    "resolve",
    "transformers_version",
]
