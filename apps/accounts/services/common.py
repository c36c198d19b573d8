"""Input checks and hashing shared by the account services."""

from __future__ import annotations

import hashlib

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from syntera.errors import ApplicationError

from ..models import Role, User


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            "Enter a valid email address.", fields={"email": ["Enter a valid email address."]}
        ) from exc
    return email


def _check_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(
            "Choose a stronger password.", code="weak_password", fields={"password": list(exc.messages)}
        ) from exc


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise ApplicationError(
            f"Unknown role {role!r}.", fields={"role": [f"Choose one of: {', '.join(Role.values)}."]}
        ) from exc
