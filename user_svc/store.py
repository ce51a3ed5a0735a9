"""Users in SQL: the user table's row mapping and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from shop_common.domain import AlreadyExists, FieldViolation, NotFound
from shop_common.storage import Changelog, ResourceTable, from_us, to_us
from user_svc import schema
from user_svc.domain import User


class UserRows:
    def to_row(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "email": user.email,
            "email_key": user.email_key,
            "display_name": user.display_name,
            "create_time_us": to_us(user.create_time),
            "update_time_us": to_us(user.update_time),
            "revision": user.revision,
            "subject": user.subject,
        }

    def from_row(self, row: Mapping[Any, Any]) -> User:
        return User(
            id=row["id"],
            email=row["email"],
            display_name=row["display_name"],
            create_time=from_us(row["create_time_us"]),
            update_time=from_us(row["update_time_us"]),
            revision=row["revision"],
            subject=row.get("subject"),  # changes recorded before owners were have none
        )


def not_found(user_id: str) -> NotFound:
    return NotFound(
        f"user {user_id} does not exist", reason="USER_NOT_FOUND", metadata={"id": user_id}
    )


def _taken(error: IntegrityError) -> AlreadyExists:
    # A write can break two unique constraints (ids are UUIDv7): the subject's, whose
    # index both databases name in their message, and the e-mail's.
    if "subject" in str(error.orig):
        return AlreadyExists(
            "the subject already owns a user",
            reason="SUBJECT_TAKEN",
            violations=[FieldViolation("subject", "already owns a user", "SUBJECT_TAKEN")],
        )
    return AlreadyExists(
        "another user has this e-mail address",
        reason="EMAIL_TAKEN",
        violations=[FieldViolation("user.email", "is already used by another user", "EMAIL_TAKEN")],
    )


def user_table(changelog: Changelog) -> ResourceTable[User]:
    return ResourceTable(
        schema.users, UserRows(), changelog=changelog, not_found=not_found, conflict=_taken
    )
