"""`SourceStopping`, in a module of its own: the HTTP client and the raw archive raise it, the
service catches it, and catching it must not import aiohttp (a tenth of a second of the
service's start, which an inbox-only service never needs)."""

from __future__ import annotations


class SourceStopping(Exception):
    """The source's stop event (the drain) cut a retry's backoff short: the pass ends here.

    Not an `HttpError`: a source that counts a failed request as a drop must not count this
    one, since nothing failed; the runner ends the pass quietly and the next start fetches again
    from the saved cursor."""
