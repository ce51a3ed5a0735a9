"""Users and their rules. Pure: no I/O, no gRPC, no SQL."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from shop_common.domain import Aborted, FieldViolation, InvalidArgument

MAX_EMAIL_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 200
MAX_SUBJECT_LENGTH = 255
MUTABLE_FIELDS = ("email", "display_name")

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co"})
JOINERS_IN_NAMES = frozenset({"\u200c", "\u200d"})
"""ZWNJ and ZWJ: Persian and Indic names and emoji sequences need them (PRECIS allows them
in context); the only invisible formatting characters a display name may hold."""
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    display_name: str
    create_time: datetime
    update_time: datetime
    revision: int = 0
    """The revision of the write that last changed the user; 0 before it is stored."""
    subject: str | None = None
    """The token subject that owns the user; None when no subject owns it."""

    @property
    def email_key(self) -> str:
        """What uniqueness is checked on: e-mail addresses compare without case."""
        return self.email.lower()

    @property
    def etag(self) -> str:
        return str(self.revision)


def email_violation(email: str, field: str = "email") -> FieldViolation | None:
    if not email:
        return FieldViolation(field, "is required", "REQUIRED")
    if (
        len(email.lower()) > MAX_EMAIL_LENGTH
        or len(email) > MAX_EMAIL_LENGTH
        or not _EMAIL.match(email)
        or _has_hidden(email, frozenset())
    ):
        return FieldViolation(field, "is not a valid e-mail address", "INVALID_EMAIL")
    return None


def display_name_violation(name: str, field: str = "display_name") -> FieldViolation | None:
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        return FieldViolation(field, f"must be at most {MAX_DISPLAY_NAME_LENGTH} characters")
    if _has_hidden(name, JOINERS_IN_NAMES):
        return FieldViolation(field, "must not contain control or invisible formatting characters")
    return None


def _has_hidden(text: str, allowed: frozenset[str]) -> bool:
    """Control, surrogate and private-use characters, and invisible formatting ones (Cf: zero
    widths, bidirectional overrides), which let `ada<U+200B>@example.com` pass for another
    address or turn a name around on screen. Refused, not removed: the client sees why."""
    return any(unicodedata.category(ch) in _HIDDEN and ch not in allowed for ch in text)


def _check(*violations: FieldViolation | None) -> None:
    found = [v for v in violations if v is not None]
    if found:
        raise InvalidArgument.of(*found)


def owner_of_new_user(requested: str, caller: str | None) -> str | None:
    """Who owns a user being created: the subject the request names, or else the caller's.
    (Whether the caller may name another subject is the policy's: `user_svc.policy`.)"""
    if not requested:
        return caller
    if len(requested) > MAX_SUBJECT_LENGTH or _has_hidden(requested, frozenset()):
        raise InvalidArgument.of(
            FieldViolation(
                "subject",
                f"must be at most {MAX_SUBJECT_LENGTH} characters, none of them invisible",
            )
        )
    return requested


def new_user(
    user_id: str, email: str, display_name: str, now: datetime, subject: str | None = None
) -> User:
    _check(
        email_violation(email, "user.email"),
        display_name_violation(display_name, "user.display_name"),
    )
    return User(user_id, email, display_name, create_time=now, update_time=now, subject=subject)


def changes_for(values: Mapping[str, str], mask: Sequence[str] | None) -> dict[str, str]:
    """The fields an update changes: those named in `mask` (`*` for all), or
    without a mask, those given a non-empty value (AIP-134)."""
    if mask is None:
        return {f: values[f] for f in MUTABLE_FIELDS if values.get(f)}
    if list(mask) == ["*"]:
        return {f: values.get(f, "") for f in MUTABLE_FIELDS}
    unknown = [p for p in mask if p not in MUTABLE_FIELDS]
    if unknown:
        raise InvalidArgument.of(
            *(
                FieldViolation("update_mask", f"{p!r} is not a field that can be updated")
                for p in unknown
            )
        )
    return {f: values.get(f, "") for f in dict.fromkeys(mask)}


def check_etag(user: User, expected: str) -> None:
    """A non-empty expected etag must match the user's current one."""
    if expected and expected != user.etag:
        raise Aborted(
            "the user was changed since it was read: read it again and retry",
            reason="ETAG_MISMATCH",
            metadata={"current_etag": user.etag},
        )


def updated(user: User, changes: Mapping[str, str], expected_etag: str, now: datetime) -> User:
    check_etag(user, expected_etag)
    _check(
        email_violation(changes["email"], "user.email") if "email" in changes else None,
        display_name_violation(changes["display_name"], "user.display_name")
        if "display_name" in changes
        else None,
    )
    return dataclasses.replace(
        user,
        email=changes.get("email", user.email),
        display_name=changes.get("display_name", user.display_name),
        update_time=now,
    )
