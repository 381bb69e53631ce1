"""Chat sessions: a conversation whose every turn is one ``generate_with_retry`` call.

This file is the only hand-written copy of the chat classes. ``make generate`` turns it into
the sync ones; keep comments and docstrings true for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from google.genai import types

from .._core import chat_history
from .._core.request import GenerateConfig
from .._primitives import AsyncResult, AsyncStream
from ..errors import ConfigError


class _TurnSender(Protocol):
    """What a chat needs from the client: one turn, answered whole or streamed."""

    def _chat_turn(
        self, contents: list[types.Content], model: str | None, config: GenerateConfig | None
    ) -> AsyncResult[types.GenerateContentResponse]: ...

    def _chat_turn_stream(
        self,
        contents: list[types.Content],
        model: str | None,
        config: GenerateConfig | None,
        on_hop: Callable[[], None],
    ) -> AsyncStream[types.GenerateContentResponse]: ...


class GreyCloudAsyncChats:
    """``client.chats``: makes chat sessions on the client (as google-genai's ``chats``)."""

    def __init__(self, client: _TurnSender) -> None:
        self._client = client

    def create(
        self,
        model: str | None = None,
        config: GenerateConfig | None = None,
        history: Sequence[types.Content | dict[str, Any]] | None = None,
    ) -> GreyCloudAsyncChat:
        """A new chat with ``model`` (default: the client's), a ``GenerateContentConfig`` (or
        dict) for every turn, and an earlier ``history`` of user and model contents."""
        return GreyCloudAsyncChat(self._client, model, config, history)


class GreyCloudAsyncChat:
    """One conversation. Each turn sends the curated history plus the message through the
    client's ``generate_with_retry``: limits, retries, stream resume and function calling.

    A turn that fails, or a stream left before its end, leaves the history as it was; a
    streamed turn is added once its stream has ended.
    """

    def __init__(
        self,
        client: _TurnSender,
        model: str | None = None,
        config: GenerateConfig | None = None,
        history: Sequence[types.Content | dict[str, Any]] | None = None,
    ) -> None:
        try:
            contents = chat_history.as_contents(history)
        except ValueError as exc:
            raise ConfigError("history", str(exc)) from None
        self._client = client
        self.model = model
        self.config = config
        self._history = contents
        self._curated = chat_history.curated(contents)

    def get_history(self, curated: bool = False) -> list[types.Content]:
        """Every turn so far, or with ``curated`` only those the next turn sends (turns with an
        empty or invalid answer left out)."""
        return list(self._curated if curated else self._history)

    async def send_message(
        self, message: Any, config: GenerateConfig | None = None
    ) -> types.GenerateContentResponse:
        """Send ``message`` (text, a part or a list of parts); ``config`` replaces the chat's
        config for this turn, as in google-genai."""
        user = chat_history.user_turn(message)
        sent = len(self._curated)
        response: types.GenerateContentResponse = await self._client._chat_turn(
            [*self._curated, user], self.model, config or self.config
        )
        candidates = response.candidates
        answer = candidates[0].content if candidates else None
        self._record(sent, user, response.automatic_function_calling_history, answer)
        return response

    def send_message_stream(
        self, message: Any, config: GenerateConfig | None = None
    ) -> AsyncStream[types.GenerateContentResponse]:
        """The streamed form of ``send_message``: the answer's chunks. As with the client's
        streams, nothing is sent before the first chunk is asked for; the turn joins the
        history when the stream ends."""
        user = chat_history.user_turn(message)
        return AsyncStream(lambda: self._stream_turn(user, config or self.config))

    async def _stream_turn(
        self, user: types.Content, config: GenerateConfig | None
    ) -> AsyncIterator[types.GenerateContentResponse]:
        sent = len(self._curated)
        calling: list[types.Content] | None = None
        # The answer is what the model said in the last hop (earlier hops called functions).
        parts: list[types.Part] = []
        stream = self._client._chat_turn_stream(
            [*self._curated, user], self.model, config, parts.clear
        )
        try:
            async for chunk in stream:
                # Kept unless the config ignores it: the function-calling exchange so far.
                if chunk.automatic_function_calling_history:
                    calling = chunk.automatic_function_calling_history
                candidates = chunk.candidates
                content = candidates[0].content if candidates else None
                if content is not None and content.parts:
                    parts.extend(content.parts)
                yield chunk
        finally:
            await stream.aclose()
        answer = chat_history.streamed_answer(parts)
        self._record(sent, user, calling, answer)

    def _record(
        self,
        sent: int,
        user: types.Content,
        calling: list[types.Content] | None,
        answer: types.Content | None,
    ) -> None:
        entries = chat_history.turn_entries(sent, user, calling, answer)
        self._history.extend(entries)
        if answer is not None and chat_history.is_valid(answer):
            self._curated.extend(entries)
