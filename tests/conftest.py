"""Suite-wide settings: tests reach nothing beyond this machine's loopback interface."""

from __future__ import annotations

import os

# google-auth would otherwise probe the GCE metadata server when looking for credentials.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"

# The OpenTelemetry SDK with in-memory exporters (telemetry tests), and a real redis-server for
# the limiter's Redis tests (started only by the tests that ask for it).
from tests.otel_fixture import otel  # noqa: F401
from tests.redis_fixture import own_redis, redis_server, redis_url  # noqa: F401
