"""How the Hub refuses a request: a status, a message, and the headers the client reads."""

from __future__ import annotations

from aiohttp import web


class HubError(Exception):
    """A refusal, answered as the Hub does: `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
    `EntryNotFound`) makes the client raise its typed errors."""

    def __init__(self, status: int, message: str, code: str | None = None, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers)
        if code:
            self.headers["X-Error-Code"] = code

    def response(self) -> web.Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        return web.json_response({"error": self.message}, status=self.status, headers=headers)
