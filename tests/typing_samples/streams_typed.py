"""Checked by mypy in tests/test_typing.py (never run): what the generation methods return."""

from __future__ import annotations

from typing import assert_type

from google.genai import types

from greycloud import GreyCloudAsyncClient, GreyCloudClient
from greycloud._primitives import AsyncStream, SyncStream

Response = types.GenerateContentResponse


async def async_forms(client: GreyCloudAsyncClient) -> None:
    assert_type(await client.generate_with_retry("x"), Response)
    assert_type(await client.generate_content("x"), Response)
    assert_type(client.generate_with_retry("x", streaming=True), AsyncStream[str])
    assert_type(await client.generate_with_retry("x", streaming=True), AsyncStream[str])
    chunks = client.generate_with_retry("x", streaming=True, return_chunks=True)
    assert_type(chunks, AsyncStream[Response])
    assert_type(client.generate_content_stream("x"), AsyncStream[str])
    assert_type(client.generate_content_stream("x", return_chunks=True), AsyncStream[Response])
    async for text in client.generate_with_retry("x", streaming=True):
        assert_type(text, str)
    chat = client.chats.create()
    assert_type(await chat.send_message("x"), Response)
    assert_type(chat.send_message_stream("x"), AsyncStream[Response])


def weather(city: str) -> str:
    return "sun"


def sync_forms(client: GreyCloudClient) -> None:
    tools = [weather]  # a list built beforehand is accepted as tools
    assert_type(client.generate_content("x", tools=tools), Response)
    assert_type(client.generate_with_retry("x"), Response)
    assert_type(client.generate_content("x"), Response)
    assert_type(client.generate_with_retry("x", streaming=True), SyncStream[str])
    chunks = client.generate_with_retry("x", streaming=True, return_chunks=True)
    assert_type(chunks, SyncStream[Response])
    assert_type(client.generate_content_stream("x"), SyncStream[str])
    for text in client.generate_content_stream("x"):
        assert_type(text, str)
    chat = client.chats.create()
    assert_type(chat.send_message("x"), Response)
    assert_type(chat.send_message_stream("x"), SyncStream[Response])
