"""Connection settings shared by both clients: address, TLS, credentials, method table."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from ._proto import agentdb_pb2, orchestration_pb2
from ._retry import RetryPolicy

DEFAULT_URL = "127.0.0.1:7720"
#: The server's default message limit is 64 MiB.
MAX_MESSAGE_BYTES = 64 << 20

PemArg = Union[bytes, str, "os.PathLike[str]", None]
RetriesArg = Union[RetryPolicy, int, None]


@dataclass(frozen=True)
class Settings:
    target: str
    credentials: Optional[grpc.ChannelCredentials]
    metadata: Tuple[Tuple[str, str], ...]
    timeout: Optional[float]
    retry: RetryPolicy
    options: Tuple[Tuple[str, Any], ...]


def _pem(v: PemArg) -> Optional[bytes]:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v
    s = os.fspath(v)
    if s.lstrip().startswith("-----BEGIN"):
        return s.encode()
    return Path(s).read_bytes()


def settings(
    url: Optional[str],
    api_key: Optional[str],
    token: Optional[str],
    tls: Optional[bool],
    root_certificates: PemArg,
    client_cert: PemArg,
    client_key: PemArg,
    server_name: Optional[str],
    timeout: Optional[float],
    retries: RetriesArg,
    metadata: Optional[Mapping[str, str]],
    options: Optional[Sequence[Tuple[str, Any]]],
) -> Settings:
    url = url or os.environ.get("AGENTDB_URL") or DEFAULT_URL
    scheme_tls: Optional[bool] = None
    if "://" in url:
        scheme, _, url = url.partition("://")
        if scheme not in ("http", "https", "grpc", "grpcs"):
            raise ValueError(f"unsupported URL scheme {scheme!r}: use http(s)://HOST:PORT or HOST:PORT")
        scheme_tls = scheme in ("https", "grpcs")
    target = url.rstrip("/")
    if root_certificates is None and os.environ.get("AGENTDB_CA_CERT"):
        root_certificates = os.environ["AGENTDB_CA_CERT"]
    if tls is None:
        tls = scheme_tls if scheme_tls is not None else root_certificates is not None
    if api_key is not None and token is not None:
        raise ValueError("give api_key= or token=, not both")
    if api_key is None and token is None:
        api_key = os.environ.get("AGENTDB_API_KEY") or None
    secret = api_key if api_key is not None else token
    md: List[Tuple[str, str]] = []
    if secret:
        # The server reads `authorization: Bearer` for both: API keys (adb_...) and OIDC
        # tokens (JWTs) are told apart by their form.
        md.append(("authorization", f"Bearer {secret}"))
    for k, v in (metadata or {}).items():
        md.append((k.lower(), v))
    creds = None
    opts: List[Tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.enable_retries", 0),
    ]
    if tls:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_pem(root_certificates),
            private_key=_pem(client_key),
            certificate_chain=_pem(client_cert),
        )
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
    elif client_cert is not None or client_key is not None:
        raise ValueError("client_cert/client_key need TLS (tls=True or an https:// URL)")
    opts.extend(options or ())
    if isinstance(retries, RetryPolicy):
        policy = retries
    elif retries is None:
        policy = RetryPolicy()
    else:
        policy = RetryPolicy(max_attempts=max(1, int(retries) + 1))
    return Settings(target, creds, tuple(md), timeout, policy, tuple(opts))


@dataclass(frozen=True)
class Method:
    path: str
    serialize: Callable[[Any], bytes]
    deserialize: Callable[[bytes], Any]
    client_streaming: bool
    server_streaming: bool


def _method_table() -> Dict[str, Method]:
    modules = {m.DESCRIPTOR.name: m for m in (agentdb_pb2, orchestration_pb2)}
    table: Dict[str, Method] = {}
    for mod in modules.values():
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                req = getattr(modules[m.input_type.file.name], m.input_type.name)
                resp = getattr(modules[m.output_type.file.name], m.output_type.name)
                path = f"/{svc.full_name}/{m.name}"
                table[path] = Method(path, req.SerializeToString, resp.FromString, m.client_streaming, m.server_streaming)
    return table


#: Every RPC of agentdb.v1, by path, built from the descriptors (so the clients need no
#: generated stub classes and work with both grpc and grpc.aio channels).
METHODS: Dict[str, Method] = _method_table()


def multicallable(channel: Any, path: str) -> Any:
    m = METHODS[path]
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(m.client_streaming, m.server_streaming)]
    return kind(path, request_serializer=m.serialize, response_deserializer=m.deserialize)
