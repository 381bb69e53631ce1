"""Function calling one hop at a time: the bookkeeping of the loop (pure, no I/O).

With Python functions in ``tools`` google-genai runs its own loop inside one call, which would
let several requests pass the limiter as one and repeat functions when a late hop is retried.
greycloud switches that loop off on the wire and runs it itself: each model request is one
limited, retried call, and each function runs once. This module decides whether the loop runs,
how far, and builds what each hop sends; the clients do the calls.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import _transformers, types

# google-genai's default for automatic_function_calling.maximum_remote_calls.
DEFAULT_MAXIMUM_REMOTE_CALLS = 10


@dataclass(frozen=True)
class FunctionLoop:
    """How greycloud runs the functions of one request: which, and for how many model calls."""

    functions: dict[str, Callable[..., Any]]
    maximum_remote_calls: int
    """Model requests at most; the last answer is returned as it is, calls included."""
    keep_history: bool
    """Whether the final response carries ``automatic_function_calling_history``."""


def functions_in(tools: Sequence[Any] | None) -> dict[str, Callable[..., Any]]:
    """The Python functions among ``tools``, by name (declarations and server tools left out)."""
    return {tool.__name__: tool for tool in tools or () if callable(tool)}


def plan(config: types.GenerateContentConfig | None) -> FunctionLoop | None:
    """The loop to run for ``config`` as the caller wrote it, or None when there is none.

    As google-genai decides: no functions, ``disable=True`` or ``maximum_remote_calls <= 0``
    mean no loop (the model's function calls go back to the caller), and so do function
    declarations given beside the functions (the caller must answer those itself).
    """
    if config is None:
        return None
    functions = functions_in(config.tools)
    if not functions:
        return None
    automatic = config.automatic_function_calling
    maximum = DEFAULT_MAXIMUM_REMOTE_CALLS
    keep_history = True
    if automatic is not None:
        if automatic.disable:
            return None
        if automatic.maximum_remote_calls is not None:
            maximum = int(automatic.maximum_remote_calls)
        keep_history = not automatic.ignore_call_history
    if maximum <= 0:
        return None
    if any(
        isinstance(tool, types.Tool) and tool.function_declarations for tool in config.tools or ()
    ):
        return None
    return FunctionLoop(functions, maximum, keep_history)


def without_sdk_loop(config: types.GenerateContentConfig) -> types.GenerateContentConfig:
    """``config`` (a copy) with google-genai's own loop switched off: greycloud runs it."""
    automatic = config.automatic_function_calling
    if automatic is not None and automatic.disable and automatic.maximum_remote_calls is None:
        return config
    return config.model_copy(
        update={"automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True)}
    )


def model_turn(response: types.GenerateContentResponse) -> types.Content | None:
    """The first candidate's content: what the model said on this hop."""
    candidates = response.candidates
    return candidates[0].content if candidates else None


def calls_in(parts: Sequence[types.Part] | None) -> list[types.FunctionCall]:
    """The function calls among ``parts``, in order."""
    return [part.function_call for part in parts or () if part.function_call is not None]


def start_history(contents: Any) -> list[types.Content]:
    """The request's contents as a list of ``Content``, the start of the calling history.

    google-genai's own conversion, so that the history matches the one its loop keeps.
    """
    return list(_transformers.t_contents(contents))


def arguments_for(function: Callable[..., Any], args: dict[str, Any] | None) -> dict[str, Any]:
    """The model's JSON arguments, converted to what ``function``'s annotations ask for.

    JSON has no integers apart from floats, no dates and no objects: each annotated parameter
    is validated (lax) against its annotation, so ``3.0`` becomes ``3`` for an ``int``, a dict
    becomes a pydantic model, and an ISO string a ``datetime``. Raises ``ValueError`` when an
    argument does not fit; unannotated parameters get the value as it is.
    """
    given = dict(args or {})
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError):
        hints = {}
    converted: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name not in given:
            continue
        value = given[name]
        annotation = hints.get(name, parameter.annotation)
        if annotation is inspect.Parameter.empty or annotation is Any:
            converted[name] = _whole_numbers(value)
        else:
            converted[name] = _validate(annotation, value)
    return converted


def _whole_numbers(value: Any) -> Any:
    """Floats without a fraction as ints, at any depth (how JSON numbers usually meant ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _validate(annotation: Any, value: Any) -> Any:
    try:
        adapter = _adapter(annotation)
    except TypeError:  # an unhashable annotation: not cached
        adapter = pydantic.TypeAdapter(annotation)
    return adapter.validate_python(value)


@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def reply_part(
    call: types.FunctionCall, *, result: Any = None, error: BaseException | None = None
) -> types.Part:
    """The ``functionResponse`` part answering ``call``: ``{"result": ...}``, or
    ``{"error": "..."}`` when the function (or its arguments) failed, as google-genai reports
    it, so the model can react to the failure."""
    response = {"error": str(error)} if error is not None else {"result": result}
    return types.Part(
        function_response=types.FunctionResponse(id=call.id, name=call.name, response=response)
    )


def unknown_function(call: types.FunctionCall, loop: FunctionLoop) -> ValueError:
    known = ", ".join(sorted(loop.functions))
    return ValueError(f"there is no function named {call.name!r}; the functions are: {known}")


def replies_turn(parts: list[types.Part]) -> types.Content:
    return types.Content(role="user", parts=parts)
