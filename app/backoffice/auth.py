"""Who may see the back office: the bearer token for the API, signed session cookies for the pages.

- The API compares `Authorization: Bearer <token>` with `BACKOFFICE_TOKEN` in constant time.
- A member of staff signs in once with the same token; the cookie then holds a signed, expiring session
  value (never the token itself). The signing key is derived from the token, so changing the token signs
  everybody out.
- Every form carries a CSRF token derived from the session's own nonce (the sign-in form from a short-lived
  pre-session cookie), checked on every POST.
- Failed sign-ins are counted per client address; past the limit the address waits (in memory: one relay
  process is one counter; a guesser would need 2^64 tries for a 16-character token anyway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "__Host-backoffice_session"  # __Host-: Secure, Path=/, no Domain, so no subdomain sets it
SIGN_IN_COOKIE = "__Host-backoffice_sign_in"
SESSION_SECONDS = 12 * 3600
SIGN_IN_FORM_SECONDS = 3600
Clock = Callable[[], float]


def tokens_match(provided: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(provided.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True, slots=True)
class SignedValue:
    """A verified cookie value: its kind (`session` or `sign_in`), nonce and expiry (epoch seconds)."""

    kind: str
    nonce: str
    expires_at: int


class SessionSigner:
    """Signs and checks cookie values and the CSRF tokens bound to them."""

    def __init__(self, token: str, *, clock: Clock = time.time) -> None:
        self._key = hmac.new(token.encode(), b"voice-agent back office cookies v1", hashlib.sha256).digest()
        self._clock = clock

    def _mac(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, kind: str, lifetime_seconds: int) -> str:
        """A new signed value of `kind` that expires after `lifetime_seconds`."""
        payload = f"{kind}.{int(self._clock()) + lifetime_seconds}.{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str | None, kind: str) -> SignedValue | None:
        """The value's contents if it is ours, of `kind`, and not expired; otherwise None."""
        if not value or len(value) > 256:
            return None
        payload, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != kind or not parts[1].isdigit():
            return None
        expires_at = int(parts[1])
        if expires_at <= self._clock():
            return None
        return SignedValue(kind=parts[0], nonce=parts[2], expires_at=expires_at)

    def csrf_token(self, signed: SignedValue) -> str:
        """The CSRF token a form must carry for this session (or sign-in form)."""
        return self._mac(f"csrf.{signed.kind}.{signed.nonce}")

    def csrf_ok(self, signed: SignedValue | None, presented: str | None) -> bool:
        """True if `presented` is the CSRF token of `signed`."""
        if signed is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token(signed).encode())


class SignInLimiter:
    """At most `max_failures` failed sign-ins per client address within `window_seconds`."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        max_addresses: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again (0 when it may try now)."""
        failures = self._recent(address)
        if len(failures) < self._max:
            return 0.0
        return max(0.0, failures[0] + self._window - self._clock())

    def failed(self, address: str) -> None:
        """Count one failed sign-in from `address`."""
        if address not in self._failures and len(self._failures) >= self._max_addresses:
            self._prune()
            if len(self._failures) >= self._max_addresses:  # under a flood, forget the oldest address
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(address, deque()).append(self._clock())

    def succeeded(self, address: str) -> None:
        """A good sign-in clears the address's count."""
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def _prune(self) -> None:
        for address in list(self._failures):
            self._recent(address)
