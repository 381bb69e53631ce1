"""Every public member of each async class has a sync twin with the same parameters.

The pairs are found, not listed: each public class of greycloud._async and the class its name
becomes under the generator's replacement table, in greycloud._sync.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

import greycloud._async

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "tools" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


REPLACEMENTS: dict[str, str] = {
    **_generator().REPLACEMENTS,
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
}


def class_pairs() -> list[tuple[type, type]]:
    pairs = []
    for info in pkgutil.iter_modules(greycloud._async.__path__):
        async_module = importlib.import_module(f"greycloud._async.{info.name}")
        sync_module = importlib.import_module(f"greycloud._sync.{info.name}")
        for name, cls in vars(async_module).items():
            defined_here = inspect.isclass(cls) and cls.__module__ == async_module.__name__
            if defined_here and not name.startswith("_"):
                pairs.append((cls, getattr(sync_module, REPLACEMENTS.get(name, name))))
    return pairs


PAIRS = class_pairs()


def test_the_public_classes_are_covered() -> None:
    names = {async_cls.__name__ for async_cls, _ in PAIRS}
    assert {
        "GreyCloudAsyncClient",
        "VertexRateLimiter",
        "GreyCloudAsyncChats",
        "GreyCloudAsyncChat",
    } <= names


def public_members(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        or name in ("__init__", "__aenter__", "__aexit__", "__enter__", "__exit__")
    }


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda c: c.__name__)
def test_same_members_with_same_parameters(async_cls: type, sync_cls: type) -> None:
    sync_members = public_members(sync_cls)
    for name, member in public_members(async_cls).items():
        twin_name = REPLACEMENTS.get(name, name)
        assert twin_name in sync_members, f"{sync_cls.__name__} lacks {twin_name}"
        twin = sync_members[twin_name]
        if isinstance(member, property) or not callable(member):
            assert isinstance(twin, property) == isinstance(member, property), name
            continue
        async_params = inspect.signature(member).parameters
        sync_params = inspect.signature(twin).parameters  # type: ignore[arg-type]
        assert [(p.name, p.kind, p.default) for p in async_params.values()] == [
            (p.name, p.kind, p.default) for p in sync_params.values()
        ], f"{async_cls.__name__}.{name} and {sync_cls.__name__}.{twin_name} differ"


def test_async_methods_are_coroutines_and_sync_ones_are_not() -> None:
    from greycloud import GreyCloudAsyncClient, GreyCloudClient
    from greycloud._async.chats import GreyCloudAsyncChat
    from greycloud._sync.chats import GreyCloudChat

    for async_cls, sync_cls, names in (
        (GreyCloudAsyncClient, GreyCloudClient, ("generate_content", "count_tokens")),
        (GreyCloudAsyncChat, GreyCloudChat, ("send_message",)),
    ):
        for name in names:
            assert inspect.iscoroutinefunction(getattr(async_cls, name)), name
            assert not inspect.iscoroutinefunction(getattr(sync_cls, name)), name


def test_methods_that_may_stream_return_the_stream_object_in_both_halves() -> None:
    """Plain functions, so that the async result can be both iterated and awaited."""
    from greycloud import GreyCloudAsyncClient, GreyCloudClient
    from greycloud._async.chats import GreyCloudAsyncChat
    from greycloud._sync.chats import GreyCloudChat

    for cls, names in (
        (GreyCloudAsyncClient, ("generate_with_retry", "generate_content_stream")),
        (GreyCloudClient, ("generate_with_retry", "generate_content_stream")),
        (GreyCloudAsyncChat, ("send_message_stream",)),
        (GreyCloudChat, ("send_message_stream",)),
    ):
        for name in names:
            method = getattr(cls, name)
            assert not inspect.iscoroutinefunction(method), name
            assert not inspect.isasyncgenfunction(method), name
            assert not inspect.isgeneratorfunction(method), name


def test_the_stream_pair_mirrors_itself() -> None:
    """The streams the clients return: the sync one has every member of the async one, under
    its generated name, except ``__await__`` (a sync stream is not awaited)."""
    from greycloud._primitives import AsyncStream, SyncStream

    sync_members = public_members(SyncStream)
    for name in public_members(AsyncStream):
        twin = REPLACEMENTS.get(name, name)
        assert twin in sync_members, f"SyncStream lacks {twin}"
    assert hasattr(AsyncStream, "__await__") and not hasattr(SyncStream, "__await__")
    for name in ("__aiter__", "__anext__", "aclose"):
        assert hasattr(AsyncStream, name)
        assert hasattr(SyncStream, REPLACEMENTS[name])
