"""What the tests share: the settings a user's environment may hold, input files."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greycloud._cli.jsonl_input import InputProblem, scan, stream
from greycloud._cli.prompts import PromptLine, line_id, parse_checked_line, parse_line

# Every variable the command reads its configuration from; a test sets or unsets each one, so
# the developer's own environment never leaks into a run.
CONFIG_VARIABLES = (
    "PROJECT_ID",
    "GCP_PROJECT",
    "LOCATION",
    "GCP_LOCATION",
    "USE_API_KEY",
    "API_KEY_FILE",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "SA_EMAIL",
    "GOOGLE_CLOUD_PROJECT",
    "GREYCLOUD_ENDPOINT",
    "GREYCLOUD_API_VERSION",
    "GREYCLOUD_ACCESS_TOKEN",
    "GREYCLOUD_SEARCH_ENDPOINT",
    "BATCH_POLL_INTERVAL",
    "BATCH_GCS_BUCKET",
    "STORAGE_EMULATOR_HOST",
)


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str]) -> Path:
    """A JSONL file: dicts as JSON, strings as they are (to write broken lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def logged_out_gcloud(bin_dir: Path) -> None:
    """A ``gcloud`` in ``bin_dir`` that answers as gcloud does when nobody is logged in: its
    reason on stderr, exit status 1."""
    script = bin_dir / "gcloud"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'ERROR: (gcloud.auth.print-access-token) You do not currently have an active "
        "account selected.' >&2\n"
        "echo 'Please run:' >&2\n"
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@dataclass
class PromptFile:
    """The valid lines of a prompt file in order, and every problem found."""

    lines: list[PromptLine]
    problems: list[InputProblem]
    invalid_lines: int  # lines left out because of a problem


def read_prompts(path: Path) -> PromptFile:
    """Read and check every line of ``path`` at once, with greycloud run's two passes."""
    checked = scan(path, parse_line, line_id)
    lines = list(stream(path, parse_checked_line, checked.invalid))
    return PromptFile(lines, checked.problems, checked.invalid_lines)
