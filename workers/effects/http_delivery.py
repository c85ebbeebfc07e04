"""POSTing JSON to a customer's endpoint with the retry semantics every outbound effect shares."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from workers.effects.errors import PermanentEffectError, TransientEffectError

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def post_json(
    http: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], *, what: str
) -> httpx.Response:
    """POST `body`; 2xx returns, 408/429/5xx and network errors are transient, other answers permanent."""
    try:
        response = http.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=HTTP_TIMEOUT
        )
    except httpx.HTTPError as exc:
        raise TransientEffectError(f"{what} unreachable: {type(exc).__name__}") from None
    if response.is_success:
        return response
    message = f"{what} answered HTTP {response.status_code}"
    if response.status_code in {408, 425, 429} or response.status_code >= 500:
        raise TransientEffectError(message)
    raise PermanentEffectError(message)
