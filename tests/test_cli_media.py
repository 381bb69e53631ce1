"""``greycloud run`` with images, PDFs and file URIs in its lines: the media reach the service
whole, and the output and summary report the prompt tokens by modality."""

from __future__ import annotations

import base64
from pathlib import Path

from greycloud.testing import VertexEmulator, samples
from tests.cli_support import write_lines
from tests.test_cli import invoke, read_output


def test_run_lines_carry_inline_media_and_file_uris(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    image = base64.b64encode(samples.png(1024, 1024)).decode()
    pdf = base64.b64encode(samples.pdf(4)).decode()

    def line(line_id: str, *parts: dict[str, object]) -> dict[str, object]:
        content = {"role": "user", "parts": [{"text": "Describe it."}, *parts]}
        return {"id": line_id, "contents": [content]}

    prompts = write_lines(
        tmp_path / "in.jsonl",
        [
            line("image", {"inlineData": {"data": image, "mimeType": "image/png"}}),
            line("pdf", {"inline_data": {"data": pdf, "mime_type": "application/pdf"}}),
            line("clip", {"fileData": {"fileUri": "gs://media/clip.mp4", "mimeType": "video/mp4"}}),
            {"id": "text", "prompt": "Just words."},
        ],
    )
    output = tmp_path / "out.jsonl"

    result = invoke(vertex_emulator, "run", str(prompts), "-o", str(output))

    assert result.exit_code == 0, result.stderr
    usage = {line_id: record["usage"] for line_id, record in read_output(output).items()}
    assert usage["image"]["prompt_tokens_by_modality"] == {"TEXT": 3, "IMAGE": 4 * 258}
    assert usage["pdf"]["prompt_tokens_by_modality"] == {"TEXT": 3, "DOCUMENT": 4 * 258}
    assert set(usage["clip"]["prompt_tokens_by_modality"]) == {"TEXT", "VIDEO"}
    assert usage["text"]["prompt_tokens_by_modality"] == {"TEXT": 3}
    for record in usage.values():
        assert sum(record["prompt_tokens_by_modality"].values()) == record["prompt_tokens"]
    # The bytes reached the service as they were in the line.
    sent = [r.body for r in vertex_emulator.requests() if r.path.endswith(":generateContent")]
    inline = [
        part.get("inlineData") or part.get("inline_data")
        for body in sent
        for part in body["contents"][0]["parts"]
        if "inlineData" in part or "inline_data" in part
    ]
    assert sorted(base64.urlsafe_b64decode(blob["data"])[:4] for blob in inline) == [
        b"%PDF",
        b"\x89PNG",
    ]
    assert "tokens in: text" in result.stderr and "image 1.0k" in result.stderr
