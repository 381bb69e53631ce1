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
        text = message if fix_command is None else f"{message} Run: {fix_command}"
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
        super().__init__(f"gave up after {attempts} attempts: {last_error}")


class QuotaExhaustedError(GreyCloudError):
    """The server reported a per-day quota as exhausted: retrying today cannot succeed."""

    def __init__(self, message: str, quota_id: str | None) -> None:
        self.quota_id = quota_id
        super().__init__(message)
