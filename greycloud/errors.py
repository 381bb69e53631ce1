"""Every error greycloud raises on its own account.

One base class, so callers can catch ``GreyCloudError``; errors coming from the service keep
their google-genai type (``google.genai.errors.APIError`` and subclasses) so existing handlers
keep working.
"""

from __future__ import annotations


class GreyCloudError(Exception):
    """Base class of greycloud's own errors."""


class ConfigError(GreyCloudError, ValueError):
    """A configuration value is wrong. The message names the field and how to fix it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class AuthError(GreyCloudError):
    """Credentials are missing, expired or could not be refreshed.

    ``fix_command`` is the shell command that usually fixes it (for example
    ``gcloud auth application-default login``).
    """

    def __init__(self, message: str, fix_command: str | None = None) -> None:
        self.fix_command = fix_command
        # One sentence, then the fix: whatever punctuation the message ends with.
        text = message if fix_command is None else f"{message.rstrip(' .')}. Run: {fix_command}"
        super().__init__(text)


class StreamInterruptedError(GreyCloudError):
    """A stream broke after text was delivered and could not be resumed without repeating it.

    ``partial_text`` is everything the caller received before the break.
    """

    def __init__(self, message: str, partial_text: str, attempts: int) -> None:
        self.partial_text = partial_text
        self.attempts = attempts
        super().__init__(message)


class RequestTooLargeError(GreyCloudError, ValueError):
    """A request needs more tokens than the whole per-minute token quota: it could never start."""

    def __init__(self, model: str, tokens: int, limit: int) -> None:
        self.model = model
        self.tokens = tokens
        self.limit = limit
        super().__init__(
            f"request for model {model!r} needs about {tokens} tokens, more than the whole "
            f"token quota of {limit} per minute; split the prompt or raise tpm"
        )


class RetryExhaustedError(GreyCloudError):
    """Every attempt of ``generate_with_retry`` failed with a transient error.

    The last error is chained as ``__cause__`` and kept in ``last_error``.
    """

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        self.attempts = attempts
        self.last_error = last_error
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"gave up after {attempts} {plural}: {last_error}")


class QuotaExhaustedError(GreyCloudError):
    """The server reported a per-day quota as exhausted: retrying today cannot succeed."""

    def __init__(self, message: str, quota_id: str | None) -> None:
        self.quota_id = quota_id
        super().__init__(message)


class LimiterStorageError(GreyCloudError):
    """The limiter's shared storage (Redis) could not be reached and the limiter was told to fail.

    Set ``rate_limit_storage_unavailable`` to "wait" (retry until it is back) or "local" (fall
    back to an in-memory share of the quota) to keep going instead.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(
            f"rate limit storage {url} is unreachable ({reason}); start it, fix "
            "rate_limit_storage, or set rate_limit_storage_unavailable to 'wait' or 'local'"
        )


class CacheTooSmallError(GreyCloudError, ValueError):
    """The contents of a context cache are below the model's minimum cacheable size."""

    def __init__(self, model: str, tokens: int, minimum: int) -> None:
        self.model = model
        self.tokens = tokens
        self.minimum = minimum
        super().__init__(
            f"the cache contents are {tokens} tokens, below the minimum of {minimum} tokens "
            f"that model {model!r} can cache; add content or send it with the prompt instead"
        )


class BatchInputError(GreyCloudError, ValueError):
    """A batch request is not a valid GenerateContentRequest (nothing was uploaded).

    ``position`` is the index of the request in the list given (from 0), or the line number
    of the JSONL file given (from 1); ``reason`` says what is wrong with it.
    """

    def __init__(self, position: int, reason: str, *, line: bool = False) -> None:
        self.position = position
        self.reason = reason
        self.line = line
        where = f"line {position}" if line else f"batch request at index {position}"
        super().__init__(f"{where}: {reason}")


class BucketNotFoundError(GreyCloudError):
    """The Cloud Storage bucket for batch input or output does not exist (or is not visible)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        super().__init__(
            f"Cloud Storage bucket {bucket!r} does not exist or these credentials cannot see "
            f"it; create it (gcloud storage buckets create gs://{bucket}) or pass another "
            "bucket_name"
        )


class BatchJobFailedError(GreyCloudError):
    """A batch job ended without succeeding (failed, cancelled or expired).

    ``state`` is the job's final state name and ``error`` the job's error, when it has one.
    """

    def __init__(self, job_name: str, state: str, error: object = None) -> None:
        self.job_name = job_name
        self.state = state
        self.error = error
        detail = f": {getattr(error, 'message', None) or error}" if error else ""
        super().__init__(f"batch job {job_name} ended in {state}{detail}")


class BatchResultsNotFoundError(GreyCloudError, FileNotFoundError):
    """A batch job's output holds no ``predictions.jsonl`` (yet): nothing to download."""

    def __init__(self, job_name: str, location: str, state: str) -> None:
        self.job_name = job_name
        self.location = location
        super().__init__(
            f"no predictions.jsonl under {location} for batch job {job_name} (state {state}); "
            "wait for the job to finish (monitor_batch_job) before reading its results"
        )
