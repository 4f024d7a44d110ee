"""How turns are laid out in the context: from the tokenizer's chat template, or markers.

A tokenizer with a ``chat_template`` lays the conversation out exactly as
``tokenizer.apply_chat_template(messages, add_generation_prompt=True)`` does. The template is
rendered once, at construction, on placeholder conversations; what it writes around each
message (``<|im_start|>user\\n`` ... ``<|im_end|>\\n<|im_start|>assistant\\n`` for ChatML) is kept
as a :class:`Frame`, and at run time each new message is written as its frame around the
message's text. The context therefore only ever grows: nothing written is re-rendered or
re-tokenized. That needs the template's *prefix-extension* property (the rendering of k
turns is a prefix of the rendering of k + 1, down to the tokens), which
:meth:`ChatFormat.for_tokenizer` checks on a sample conversation.

A tokenizer without a template gets marker turns: ``<user> prompt <eot> <agent>`` with
textgym's own tokens, or the encoded strings ``"\\nUser:"`` / ``"\\nAgent:"`` with any other
(GPT-2, say), and its eos token ends a turn.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textgym.errors import UserError
from textgym.types import Turn

USER, AGENT = "<user>", "<agent>"
#: Placeholder message texts the template is rendered with (no template writes these).
SYSTEM_SLOT, PROMPT_SLOT, TEXT_SLOT = 0, 1, 2
_PLACEHOLDERS = ("Qz7system7zQ", "Qz7first7zQ", "Qz7reply7zQ", "Qz7agent7zQ")
#: A conversation checked for prefix-extension, token for token (real-looking text).
_SAMPLE = (
    ("user", "What is 12 plus 7? Answer with 'answer: N'."),
    ("assistant", "12 plus 7 is 19. answer: 19"),
    ("user", "Thanks! And 3 times 4?"),
    ("assistant", "answer: 12"),
    ("user", "Good."),
)

#: One piece of a frame: a token id, frame text (tokenized together with the message text
#: beside it, exactly as the whole rendering would be), or a slot for the message's text.
Piece = int | str | tuple[int]
Encode = Callable[[str], list[int]]
#: The tokenizer's added tokens as one regex, and their ids.
Specials = tuple["re.Pattern[str] | None", dict[str, int]]


def encode_plain(tokenizer: Any, text: str) -> list[int]:
    """``text`` as ids with special-token text kept inert (``"<eot>"`` is spelled, not a
    control token), for text the agent does not control: prompts, replies, transcripts.

    A Rust backend is switched to ``encode_special_tokens`` for this one call and restored at
    once, since the tokenizer object is shared; a slow tokenizer gets
    ``split_special_tokens=True`` where it takes it. Callers that must be certain (the env)
    also check the result against their control ids.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_special_tokens"):
        previous = backend.encode_special_tokens
        backend.encode_special_tokens = True
        try:
            return list(backend.encode(text, add_special_tokens=False).ids)
        finally:
            backend.encode_special_tokens = previous
    if backend is not None:
        return list(backend.encode(text, add_special_tokens=False).ids)
    try:
        return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
    except TypeError:  # a tokenizer without the option: the caller's control-id check remains
        return list(tokenizer.encode(text, add_special_tokens=False))


class TokenizerError(UserError, ValueError):
    """A tokenizer cannot drive a :class:`~textgym.core.TextEnv` as given."""


class ChatTemplateError(TokenizerError):
    """A chat template cannot lay out a growing context (it rewrites earlier turns...)."""


@dataclass(frozen=True)
class Frame:
    """What the layout writes around one message, as :data:`Piece` values in order."""

    pieces: tuple[Piece, ...]

    def ids(self, texts: dict[int, str], encode: Encode) -> list[int]:
        """The frame with ``texts`` in its slots, as ids.

        Frame text and the message text beside it are encoded as one string: the template's
        own rendering is tokenized that way, between its special tokens.
        """
        out: list[int] = []
        pending: list[str] = []
        for piece in self.pieces:
            if type(piece) is int:
                if pending:
                    out += encode("".join(pending))
                    pending = []
                out.append(piece)
            elif type(piece) is str:
                pending.append(piece)
            else:
                pending.append(texts[piece[0]])
        if pending and (text := "".join(pending)):
            out += encode(text)
        return out


@dataclass(frozen=True)
class ChatFormat:
    """The turn layout for one tokenizer.

    Attributes:
        pad_id: Pads observations to ``max_length``.
        eot_id: Ends an agent turn: the template's end-of-assistant token (``<|im_end|>``),
            else the eos token.
        opening: The system message (if any) and the first user message, up to the point
            where the agent writes.
        opening_system: The same with a system message (slots for both texts).
        reply: A user message after an agent turn's ``eot_id``, up to the agent's next turn.
        user_ids / agent_ids: The turn markers of the marker layout (``<user>``/``<agent>``
            or the encoded ``"\nUser:"``/``"\nAgent:"``), also for templated tokenizers:
            a user's own LM (:class:`~textgym.users.lm.LMResponder`) reads them.
        templated: Whether the layout comes from a chat template.
        trims: The template strips the whitespace around message texts.
    """

    pad_id: int
    eot_id: int
    opening: Frame
    opening_system: Frame
    reply: Frame
    user_ids: tuple[int, ...] = ()
    agent_ids: tuple[int, ...] = ()
    templated: bool = False
    trims: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> ChatFormat:
        """The layout for ``tokenizer`` (cached per tokenizer object).

        Raises:
            TokenizerError: the tokenizer cannot pad, or cannot end a turn.
            ChatTemplateError: its chat template rewrites earlier turns, so the context
                could not grow token by token.
        """
        template = getattr(tokenizer, "chat_template", None)
        try:
            cached = _CACHE.get(tokenizer)
        except TypeError:  # not weak-referenceable: derive it each time
            cached = None
        if cached is not None and cached[0] == template:
            return cached[1]
        fmt = _from_template(tokenizer) if template else _from_markers(tokenizer)
        with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
            _CACHE[tokenizer] = (template, fmt)
        return fmt

    def opening_ids(self, system: str | None, prompt: str, encode: Encode) -> list[int]:
        """The context's start: the system message (if any), the prompt, the agent's cue."""
        if system is None:
            return self.opening.ids({PROMPT_SLOT: self._text(prompt)}, encode)
        texts = {SYSTEM_SLOT: self._text(system), PROMPT_SLOT: self._text(prompt)}
        return self.opening_system.ids(texts, encode)

    def reply_ids(self, text: str, encode: Encode) -> list[int]:
        """A user message written after the agent's end-of-turn token, and the agent's cue."""
        return self.reply.ids({TEXT_SLOT: self._text(text)}, encode)

    def _text(self, text: str) -> str:
        return text.strip() if self.trims else text


_CACHE: weakref.WeakKeyDictionary[Any, tuple[Any, ChatFormat]] = weakref.WeakKeyDictionary()


def messages(system: str | None, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The conversation as ``{"role", "content"}`` dicts, the format transformers and TRL use."""
    out = [] if system is None else [{"role": "system", "content": system}]
    out += [{"role": "user" if t.role == "user" else "assistant", "content": t.text} for t in turns]
    return out


def _pad_and_eos(tokenizer: Any) -> tuple[int, int | None]:
    name = type(tokenizer).__name__
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise TokenizerError(
            f"The tokenizer ({name}) has no pad token, needed to pad observations to "
            "max_length. Set one, e.g. `tokenizer.pad_token = tokenizer.eos_token`."
        )
    eos = getattr(tokenizer, "eos_token_id", None)
    return int(pad), None if eos is None else int(eos)


def _from_markers(tokenizer: Any) -> ChatFormat:
    """``<user> prompt <eot> <agent>``, with textgym's tokens or encoded ``"\\nUser:"``."""
    pad, eot = _pad_and_eos(tokenizer)
    if eot is None:
        raise TokenizerError(
            f"The tokenizer ({type(tokenizer).__name__}) has no eos token, which ends an "
            "agent turn when there is no chat template. Set one, e.g. `tokenizer.eos_token = "
            "'<|endoftext|>'`, or give the tokenizer a chat template."
        )
    user, agent = _markers(tokenizer)
    # Marker ids are written as they are; each text is encoded on its own (no merging).
    cue: tuple[Piece, ...] = (eot, *agent)
    return ChatFormat(
        pad_id=pad,
        eot_id=eot,
        opening=Frame((*user, (PROMPT_SLOT,), *cue)),
        opening_system=Frame((*user, (SYSTEM_SLOT,), " ", (PROMPT_SLOT,), *cue)),
        reply=Frame((*user, (TEXT_SLOT,), *cue)),
        user_ids=user,
        agent_ids=agent,
    )


def _markers(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``<user>``/``<agent>`` tokens, or the encoded ``"\nUser:"``/``"\nAgent:"``."""
    vocab = tokenizer.get_vocab()
    if USER in vocab and AGENT in vocab:
        return (vocab[USER],), (vocab[AGENT],)
    user = tuple(tokenizer.encode("\nUser:", add_special_tokens=False))
    agent = tuple(tokenizer.encode("\nAgent:", add_special_tokens=False))
    return user, agent


def _render(tokenizer: Any, conversation: Sequence[tuple[str, str]], prompt: bool) -> str:
    msgs = [{"role": r, "content": c} for r, c in conversation]
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=prompt)
    except Exception as exc:  # noqa: BLE001 - a template raises whatever its Jinja raises
        raise ChatTemplateError(
            f"The tokenizer's chat template fails on a plain {len(msgs)}-message conversation "
            f"({type(exc).__name__}: {exc}). Fix the template, or remove it "
            "(`tokenizer.chat_template = None`) for textgym's marker layout."
        ) from None
    return text if isinstance(text, str) else str(text)


def _refuse(what: str) -> ChatTemplateError:
    return ChatTemplateError(
        f"The tokenizer's chat template {what}, so a context could not grow turn by turn "
        "without re-rendering what the agent already wrote (textgym needs the rendering of k "
        "turns to be a token prefix of the rendering of k + 1). Use a template without that "
        "(set `tokenizer.chat_template`), or remove it (`tokenizer.chat_template = None`) for "
        "textgym's marker layout."
    )


def _split(text: str, slots: Sequence[tuple[str, int]], specials: Specials) -> Frame:
    """``text`` as a frame: the placeholders become slots, special-token text becomes ids."""
    pieces: list[Piece] = []
    rest = text
    for placeholder, slot in slots:
        head, found, rest = rest.partition(placeholder)
        if not found:
            raise _refuse("drops or reorders message texts")
        pieces += _frame_text(head, specials)
        pieces.append((slot,))
    pieces += _frame_text(rest, specials)
    return Frame(tuple(pieces))


def _frame_text(text: str, specials: Specials) -> list[Piece]:
    pattern, ids = specials
    if not text:
        return []
    if pattern is None:
        return [text]
    pieces: list[Piece] = []
    pos = 0
    for match in pattern.finditer(text):
        if match.start() > pos:
            pieces.append(text[pos : match.start()])
        pieces.append(ids[match.group(0)])
        pos = match.end()
    if pos < len(text):
        pieces.append(text[pos:])
    return pieces


def _specials(tokenizer: Any) -> Specials:
    """A regex over the tokenizer's added tokens (longest first, as its backend matches
    them) and their ids."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids = {str(token): int(i) for i, token in decoder.items()}
    names = sorted(ids, key=len, reverse=True)
    return (re.compile("|".join(map(re.escape, names))) if names else None), ids


def _from_template(tokenizer: Any) -> ChatFormat:
    """Derive the frames from the template's renderings of placeholder conversations."""
    pad, eos = _pad_and_eos(tokenizer)
    sys_p, first, reply, agent = _PLACEHOLDERS
    specials = _specials(tokenizer)
    pattern, special_ids = specials
    opening_text = _render(tokenizer, [("user", first)], prompt=True)
    with_agent = _render(tokenizer, [("user", first), ("assistant", agent)], prompt=False)
    if not with_agent.startswith(opening_text + agent):
        raise _refuse(
            "renders a past assistant turn differently from how it cues the next one (e.g. it "
            "adds or removes text such as reasoning tags before the assistant's words)"
        )
    tail = with_agent[len(opening_text + agent) :]
    match = pattern.match(tail) if pattern else None
    if match is None:
        if eos is None or not tail.startswith(str(tokenizer.eos_token)):
            raise _refuse(
                f"ends an assistant turn with {tail[:30]!r}, which starts with no special "
                "token to end a turn on"
            )
        eot_text, eot = str(tokenizer.eos_token), eos
    else:
        eot_text, eot = match.group(0), special_ids[match.group(0)]
    head = opening_text + agent + eot_text
    convo = [("user", first), ("assistant", agent), ("user", reply)]
    after_reply = _render(tokenizer, convo, prompt=True)
    if not after_reply.startswith(head):
        raise _refuse("rewrites the end of an assistant turn once the user answers it")
    opening = _split(opening_text, [(first, PROMPT_SLOT)], specials)
    reply_frame = _split(after_reply[len(head) :], [(reply, TEXT_SLOT)], specials)
    system_text = _render(tokenizer, [("system", sys_p), ("user", first)], prompt=True)
    if sys_p in system_text:
        opening_system = _split(system_text, [(sys_p, SYSTEM_SLOT), (first, PROMPT_SLOT)], specials)
    else:  # a template without system messages: the system text leads the first message
        opening_system = _with_system_lead(opening)
    trims = f" {first} " not in _render(tokenizer, [("user", f" {first} ")], prompt=True)
    user, agent_marker = _markers(tokenizer)
    fmt = ChatFormat(
        pad_id=pad,
        eot_id=eot,
        opening=opening,
        opening_system=opening_system,
        reply=reply_frame,
        user_ids=user,
        agent_ids=agent_marker,
        templated=True,
        trims=trims,
    )
    _check_growth(tokenizer, fmt)
    return fmt


def _with_system_lead(opening: Frame) -> Frame:
    pieces: list[Piece] = []
    for piece in opening.pieces:
        if piece == (PROMPT_SLOT,):
            pieces += [(SYSTEM_SLOT,), "\n\n"]
        pieces.append(piece)
    return Frame(tuple(pieces))


def _check_growth(tokenizer: Any, fmt: ChatFormat) -> None:
    """The frames rebuild the template's own tokens at every agent turn of a sample."""

    def encode(text: str) -> list[int]:
        return encode_plain(tokenizer, text)

    def expected(k: int) -> list[int]:
        text = _render(tokenizer, _SAMPLE[:k], prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    ids = fmt.opening_ids(None, _SAMPLE[0][1], encode)
    for k, (role, content) in enumerate(_SAMPLE[1:], start=1):
        if role == "assistant":
            if ids != expected(k):
                raise _refuse(
                    f"tokenizes the first {k} messages of a sample conversation differently "
                    "once more messages follow (tokens merge across a turn boundary, or "
                    "earlier turns change)"
                )
            ids = ids + encode(content) + [fmt.eot_id]
        else:
            ids = ids + fmt.reply_ids(content, encode)
    if ids != expected(len(_SAMPLE)):
        raise _refuse("tokenizes a user reply differently once it follows an assistant turn")
