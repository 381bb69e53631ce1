"""The emulator's Vertex AI Search ``:search`` route, spoken to over plain HTTP."""

from __future__ import annotations

from typing import Any

import requests

from greycloud.testing import Fault, SearchDocument, VertexEmulator

DATASTORE = "projects/p/locations/us/collections/default_collection/dataStores/docs"
OTHER = "projects/p/locations/us/collections/default_collection/dataStores/other"


def search(
    emulator: VertexEmulator, body: Any, datastore: str = DATASTORE, method: str = "POST"
) -> requests.Response:
    url = f"{emulator.base_url}/v1/{datastore}/servingConfigs/default_search:search"
    headers = {"Authorization": f"Bearer {emulator.token}"}
    return requests.request(method, url, json=body, headers=headers, timeout=5)


def test_real_response_shape_with_highlighted_snippets(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.set_search_documents(
        [
            SearchDocument("a", "Refunds", "Refunds take 5 days & need a receipt.", "gs://b/a"),
            {"title": "Refund <policy>", "content": "A refund for laptops needs a receipt."},
            {"title": "Shipping", "content": "Orders ship fast."},
        ]
    )
    answer = search(vertex_emulator, {"query": "laptop refund receipt", "pageSize": 5}).json()
    assert answer["totalSize"] == 2
    assert answer["attributionToken"]
    first, second = answer["results"]
    assert first["id"] == "doc-2"  # three words match before two
    document = first["document"]
    assert document["name"] == f"{DATASTORE}/branches/0/documents/doc-2"
    derived = document["derivedStructData"]
    assert derived["title"] == "Refund <policy>"
    assert "link" not in derived
    [snippet] = derived["snippets"]
    assert snippet["snippet_status"] == "SUCCESS"
    assert "<b>receipt</b>" in snippet["snippet"]
    assert second["document"]["derivedStructData"]["link"] == "gs://b/a"
    assert "&amp;" in second["document"]["derivedStructData"]["snippets"][0]["snippet"]


def test_phrases_and_stray_quotes_must_match_exactly(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.set_search_documents([{"title": "T", "content": "The 15 inch laptop."}])
    assert search(vertex_emulator, {"query": '"15 inch laptop"'}).json()["totalSize"] == 1
    assert search(vertex_emulator, {"query": '"laptop 15 inch"'}).json()["totalSize"] == 0
    assert search(vertex_emulator, {"query": '15" laptop'}).json()["totalSize"] == 0
    assert search(vertex_emulator, {"query": "15 laptop"}).json()["totalSize"] == 1
    assert "results" not in search(vertex_emulator, {"query": "zebra"}).json()


def test_documents_per_datastore_and_reset(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.set_search_documents(
        [{"title": "Only here", "content": "zebra"}], datastore=OTHER
    )
    assert search(vertex_emulator, {"query": "zebra"}, OTHER).json()["totalSize"] == 1
    assert search(vertex_emulator, {"query": "zebra"}).json()["totalSize"] == 0
    assert search(vertex_emulator, {"query": "laptop warranty"}).json()["totalSize"] >= 1
    vertex_emulator.reset()
    assert search(vertex_emulator, {"query": "zebra"}, OTHER).json()["totalSize"] == 0


def test_errors_and_faults(vertex_emulator: VertexEmulator) -> None:
    assert search(vertex_emulator, {"query": 1}).status_code == 400
    assert search(vertex_emulator, {"query": "x", "pageSize": -1}).status_code == 400
    assert search(vertex_emulator, None, method="GET").status_code == 405
    url = f"{vertex_emulator.base_url}/v1/{DATASTORE}/servingConfigs/default_search:search"
    assert requests.post(url, json={"query": "x"}, timeout=5).status_code == 401
    vertex_emulator.inject(Fault.status(503), path=":search")
    failed = search(vertex_emulator, {"query": "laptop"})
    assert failed.status_code == 503
    assert failed.json()["error"]["status"] == "UNAVAILABLE"
    assert search(vertex_emulator, {"query": "laptop"}).status_code == 200
