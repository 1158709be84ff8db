"""Errors of the orders service, each with the HTTP status the API answers with."""

from __future__ import annotations

__all__ = ["InvalidOrder", "OrderError", "OrderForbidden", "OrderNotFound"]


class OrderError(Exception):
    """A request the orders service refuses; ``detail`` says why in plain words.

    Attributes:
        detail: the reason, shown to API clients and (translated where a text
            exists) to bot users.
        status_code: the HTTP status the API maps it to.
    """

    status_code = 400

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class InvalidOrder(OrderError):
    """400: bad input (unknown store or item, wrong type, missing address...)."""


class OrderNotFound(OrderError):
    """404: no such order, category or item (or not the caller's)."""

    status_code = 404


class OrderForbidden(OrderError):
    """403: the caller does not hold the role it claims for this store."""

    status_code = 403
