"""What the model server exposes, and the knobs that protect it.

* **Bind address.** Both ports listen on loopback (127.0.0.1) unless ``--host`` says
  otherwise (TF Serving itself listens on every interface: ``0.0.0.0``).
* **Admin RPC.** ``ModelService/HandleReloadConfigRequest`` replaces the served models.
  It is off (PERMISSION_DENIED) unless ``--enable_reload_config``; when on, every
  ``base_path`` of the new config must lie under one of the allowed roots: the base
  paths the server started with, plus any ``--reload_config_allowed_path``. TF Serving
  always accepts it, from anyone who can reach the gRPC port.
* **Shared token** (``--auth_token_file``): every REST request (``Authorization:
  Bearer <token>``) and gRPC call (metadata ``authorization: Bearer <token>``), the
  metrics endpoint included, must carry it, else 401 / UNAUTHENTICATED. TF Serving has
  no authentication of its own (it expects a proxy or a mesh in front).
* **TLS** (``--ssl_cert_file`` + ``--ssl_key_file``, optionally ``--ssl_client_ca_file``
  to require client certificates; or TF Serving's ``--ssl_config_file``, an
  ``SSLConfig`` text proto with inline PEM: ``server_key``, ``server_cert``,
  ``custom_ca``, ``client_verify``): both gRPC and REST. TF Serving applies its
  ``--ssl_config_file`` to gRPC only; its REST port is plain HTTP.
"""
from __future__ import annotations

import hmac
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field

from serving import status as st

BEARER = "bearer "


@dataclass(frozen=True)
class TlsConfig:
    cert_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None = None  # set: clients must present a certificate it signed

    @classmethod
    def from_files(cls, cert_file: str, key_file: str,
                   client_ca_file: str | None = None) -> "TlsConfig":
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        return cls(read(cert_file), read(key_file), read(client_ca_file) if client_ca_file else None)

    @classmethod
    def from_ssl_config_file(cls, path: str) -> "TlsConfig":
        """TF Serving's ``--ssl_config_file`` (SSLConfig text proto, PEM strings inline)."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        fields = {}
        for name, value in re.findall(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|\w+)', text):
            fields[name] = value
        def pem(name):
            value = fields.get(name)
            if value is None or not value.startswith('"'):
                return None
            return value[1:-1].encode("latin-1").decode("unicode_escape").encode("latin-1")
        if not pem("server_cert") or not pem("server_key"):
            raise ValueError(f"{path}: an SSLConfig needs server_cert and server_key")
        verify = fields.get("client_verify", "false").lower() == "true"
        if verify and not pem("custom_ca"):
            raise ValueError(f"{path}: client_verify needs custom_ca")
        return cls(pem("server_cert"), pem("server_key"), pem("custom_ca") if verify else None)

    def grpc_credentials(self):
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)], root_certificates=self.client_ca_pem,
            require_client_auth=self.client_ca_pem is not None)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain reads files only: write the PEMs to a private temporary dir.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, data in ((cert, self.cert_pem), (key, self.key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            context.load_cert_chain(cert, key)
        if self.client_ca_pem is not None:
            context.load_verify_locations(cadata=self.client_ca_pem.decode("ascii"))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def read_token(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if len(token) < 16:
        raise ValueError(f"{path}: the shared token must be at least 16 characters")
    return token


@dataclass(frozen=True)
class Security:
    token: str | None = None
    tls: TlsConfig | None = None
    enable_reload_config: bool = False
    reload_allowed_roots: tuple[str, ...] = field(default_factory=tuple)

    def check_authorization(self, value: str | None) -> None:
        """Raises UNAUTHENTICATED unless ``value`` is ``Bearer <token>`` (or no token is set)."""
        if self.token is None:
            return
        if not value or not value.lower().startswith(BEARER):
            raise st.unauthenticated("Missing credentials: send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(value[len(BEARER):].strip().encode(), self.token.encode()):
            raise st.unauthenticated("Invalid token")

    def check_reload(self, config) -> None:
        """HandleReloadConfigRequest: disabled unless enabled; base paths under allowed roots."""
        if not self.enable_reload_config:
            raise st.permission_denied(
                "HandleReloadConfigRequest is disabled on this server; start it with "
                "--enable_reload_config to allow reloading the model config over gRPC")
        roots = [os.path.realpath(r) for r in self.reload_allowed_roots]
        for model in config.model_config_list.config:
            path = model.base_path
            real = os.path.realpath(path) if "://" not in path else path
            if not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep)
                       for root in roots):
                raise st.permission_denied(
                    f"Model {model.name}: base_path {path} is not under an allowed model base "
                    f"path ({', '.join(roots) or 'none'}); add one with "
                    "--reload_config_allowed_path")
