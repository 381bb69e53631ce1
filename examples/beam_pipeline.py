"""A Beam pipeline that answers a JSONL file of prompts with Gemini, on one shared quota.

    python examples/beam_pipeline.py                       # DirectRunner, 4 processes, emulator
    python examples/beam_pipeline.py --redis redis://127.0.0.1:6379/0   # your own Redis

Reads ``examples/prompts.jsonl`` (the input format of ``greycloud run``), runs every line
through ``RunInference(GreyCloudModelHandler(...))`` and writes two JSONL outputs:
``beam-answers*.jsonl`` (id, text, usage) and ``beam-failed*.jsonl`` (the dead-letter output:
id and error). Here it runs on the DirectRunner with four worker processes against a local
Vertex AI emulator that enforces ``--rpm``, and a ``redis-server`` it starts (or ``--redis``),
through which the four workers share that quota: the summary shows the server refused nothing.

On Dataflow the pipeline is the same; only where it runs and what it talks to change:

- Shared quota: a Memorystore for Redis instance in the job's region, e.g.
  ``gcloud redis instances create greycloud-quota --region=us-central1 --size=1``; pass its
  address as ``--redis redis://10.0.0.3:6379/0`` and run the workers in a VPC network that
  reaches it (``--network``/``--subnetwork``).
- Vertex AI: ``--no-emulator`` uses the real service; the project and location come from the
  ``PROJECT_ID`` and ``LOCATION`` variables (``GreyCloudConfig``), and each worker
  authenticates as the job's service account (give it ``roles/aiplatform.user``).
- greycloud on the workers: ``--requirements_file`` listing ``greycloud[beam,redis]`` (a git
  URL; the name on PyPI belongs to another project) or a custom container.
- The runner: ``--runner DataflowRunner --project P --region us-central1
  --temp_location gs://BUCKET/tmp --input gs://BUCKET/prompts.jsonl --output gs://BUCKET/out/``.

    python examples/beam_pipeline.py --no-emulator --redis redis://10.0.0.3:6379/0 \\
        --rpm 1000 --runner DataflowRunner --project P --region us-central1 \\
        --temp_location gs://BUCKET/tmp --network default \\
        --requirements_file requirements.txt \\
        --input gs://BUCKET/prompts.jsonl --output gs://BUCKET/out/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from google.oauth2.credentials import Credentials

from greycloud import GreyCloudConfig
from greycloud.beam import Answer, GreyCloudModelHandler, SplitFailures
from greycloud.testing import EmulatorProcess
from greycloud.testing.redis_server import RedisServer

HERE = Path(__file__).parent


def answer_line(result: PredictionResult) -> str:
    answer: Answer = result.inference
    usage = {"prompt": answer.usage.prompt, "total": answer.usage.total}
    return json.dumps({"id": result.example["id"], "text": answer.text, "usage": usage})


def failure_line(result: PredictionResult) -> str:
    failure = result.inference
    error = {"type": failure.type, "message": failure.message, "code": failure.code}
    return json.dumps({"id": result.example.get("id"), "error": error})


def build(pipeline: beam.Pipeline, handler: GreyCloudModelHandler, source: str, out: str) -> None:
    answered, failed = (
        pipeline
        | "Read" >> beam.io.ReadFromText(source)
        | "Parse" >> beam.Map(json.loads)
        | "Spread" >> beam.Reshuffle()  # across the workers
        | "Generate" >> RunInference(handler)
        | "Split" >> SplitFailures()
    )
    _ = (
        answered
        | "Answers" >> beam.Map(answer_line)
        | "WriteAnswers" >> beam.io.WriteToText(f"{out}beam-answers", file_name_suffix=".jsonl")
    )
    _ = (
        failed
        | "Failures" >> beam.Map(failure_line)
        | "WriteFailed" >> beam.io.WriteToText(f"{out}beam-failed", file_name_suffix=".jsonl")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default=str(HERE / "prompts.jsonl"))
    parser.add_argument("--output", default="./", help="prefix of the output files")
    parser.add_argument("--rpm", type=int, default=120, help="the quota the workers share")
    parser.add_argument("--redis", help="Redis URL of the shared quota (default: start one)")
    parser.add_argument("--no-emulator", action="store_true", help="use the real Vertex AI")
    args, beam_args = parser.parse_known_args()
    if not beam_args:  # locally: the DirectRunner with four worker processes
        beam_args = [
            "--direct_num_workers=4",
            "--direct_running_mode=multi_processing",
            "--default_sdk_harness_log_level=WARNING",
        ]
    options = PipelineOptions(beam_args)
    with contextlib.ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(RedisServer()).url
        credentials: Any = None
        server: EmulatorProcess | None = None
        if args.no_emulator:
            config = GreyCloudConfig(rpm=args.rpm, rate_limit_storage=redis_url)
        else:
            server = stack.enter_context(EmulatorProcess(rpm=args.rpm, latency=0.1))
            config = server.config(rpm=args.rpm, rate_limit_storage=redis_url)
            credentials = Credentials(token="emulator")  # it lets any bearer token in
        handler = GreyCloudModelHandler(config, credentials=credentials, max_batch_size=16)
        started = time.monotonic()
        with beam.Pipeline(options=options) as pipeline:
            build(pipeline, handler, args.input, args.output)
        print(f"done in {time.monotonic() - started:.1f} s; outputs: {args.output}beam-*.jsonl")
        if server is not None:
            stats = server.stats()
            print(f"the server answered {stats.accepted} requests and refused {stats.rejected}")


if __name__ == "__main__":
    main()
