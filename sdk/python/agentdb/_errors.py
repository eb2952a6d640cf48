"""Typed exceptions for gRPC failures, carrying the status code, details and hints."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple, Type

import grpc

__all__ = [
    "AgentDBError",
    "Cancelled",
    "UnknownError",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "InternalError",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "from_rpc_error",
]

_RETRY_AFTER_RE = re.compile(r"retry after (\d+) ?ms", re.IGNORECASE)


class AgentDBError(Exception):
    """A call to the server failed.

    ``code`` is the :class:`grpc.StatusCode` (``None`` for client-side failures),
    ``details`` the server's message, ``metadata`` the trailing metadata (a dict of
    str -> str), and ``retry_after`` the server's back-off hint in seconds when it gave
    one (``retry-after-ms``), else ``None``.
    """

    default_code: Optional[grpc.StatusCode] = None

    def __init__(
        self,
        details: str,
        code: Optional[grpc.StatusCode] = None,
        *,
        metadata: Optional[Dict[str, str]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.code: Optional[grpc.StatusCode] = code if code is not None else self.default_code
        self.details: str = details
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.retry_after: Optional[float] = retry_after
        name = self.code.name if self.code is not None else "CLIENT"
        super().__init__(f"{name}: {details}")

    @property
    def request_id(self) -> Optional[str]:
        """The server's ``x-request-id`` for this call, when it sent one."""
        return self.metadata.get("x-request-id")


class Cancelled(AgentDBError):
    default_code = grpc.StatusCode.CANCELLED


class UnknownError(AgentDBError):
    default_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(AgentDBError, ValueError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(AgentDBError, TimeoutError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(AgentDBError, LookupError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AgentDBError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(AgentDBError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(AgentDBError):
    """Rate limit, overload (both with ``retry_after`` when hinted) or a storage quota
    (no ``retry_after``: retrying the same write fails the same way)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(AgentDBError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AgentDBError):
    default_code = grpc.StatusCode.ABORTED


class OutOfRange(AgentDBError):
    default_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(AgentDBError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(AgentDBError):
    default_code = grpc.StatusCode.INTERNAL


class Unavailable(AgentDBError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(AgentDBError):
    default_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(AgentDBError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[grpc.StatusCode, Type[AgentDBError]] = {
    cls.default_code: cls
    for cls in (
        Cancelled,
        UnknownError,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        InternalError,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
    if cls.default_code is not None
}


def _metadata_dict(md: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for entry in md or ():
        try:
            key, value = entry.key, entry.value  # grpc._channel._Metadatum
        except AttributeError:
            key, value = entry  # plain tuple (grpc.aio.Metadata iterates as tuples)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[str(key).lower()] = str(value)
    return out


def _retry_after(md: Dict[str, str], details: str) -> Optional[float]:
    raw = md.get("retry-after-ms")
    if raw is None:
        m = _RETRY_AFTER_RE.search(details or "")
        raw = m.group(1) if m else None
    try:
        return int(raw) / 1000.0 if raw is not None else None
    except ValueError:
        return None


def _status_of(err: grpc.RpcError) -> Tuple[Optional[grpc.StatusCode], str, Dict[str, str]]:
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    md_fn = getattr(err, "trailing_metadata", None)
    code = code_fn() if callable(code_fn) else None
    details = (details_fn() if callable(details_fn) else None) or str(err)
    md = _metadata_dict(md_fn() if callable(md_fn) else None)
    init_fn = getattr(err, "initial_metadata", None)
    if callable(init_fn):
        try:
            for k, v in _metadata_dict(init_fn()).items():
                md.setdefault(k, v)
        except Exception:  # noqa: BLE001 - best effort only
            pass
    return code, details, md


def from_rpc_error(err: grpc.RpcError) -> AgentDBError:
    """Convert a :class:`grpc.RpcError` (sync or asyncio) into the typed exception."""
    code, details, md = _status_of(err)
    if code == grpc.StatusCode.CANCELLED and details == "Timeout expired":
        # tonic answers a request past its grpc-timeout with CANCELLED "Timeout expired";
        # it is the caller's deadline that passed.
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    cls = _BY_CODE.get(code, AgentDBError) if code is not None else AgentDBError
    exc = cls(details, code, metadata=md, retry_after=_retry_after(md, details))
    exc.__cause__ = err
    return exc
