"""Kubernetes API access: the official client loaded from a kubeconfig, paged lists, raw GETs and pod logs,
each call bounded by a timeout; failures become KubeApiError with the cause.

`kubernetes` is imported lazily: importing it costs about half a second and most wirecheck runs never
talk to a cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

DEFAULT_TIMEOUT = 10.0
PAGE_SIZE = 500


class KubeApiError(Exception):
    """The API could not be asked (connection, TLS, auth, timeout, bad kubeconfig) or said no."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Lister:
    api: str  # "core" | "apps" | "custom"
    all_ns: str
    namespaced: str
    crd: tuple[str, str, str] | None = None  # group, version, plural


_RESOURCES: dict[str, _Lister] = {
    "nodes": _Lister("core", "list_node", "list_node"),
    "pods": _Lister("core", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    "services": _Lister("core", "list_service_for_all_namespaces", "list_namespaced_service"),
    "secrets": _Lister("core", "list_secret_for_all_namespaces", "list_namespaced_secret"),
    "daemonsets": _Lister("apps", "list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set"),
    "statefulsets": _Lister("apps", "list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set"),
    "deployments": _Lister("apps", "list_deployment_for_all_namespaces", "list_namespaced_deployment"),
    "certificates": _Lister("custom", "list_cluster_custom_object", "list_namespaced_custom_object",
                            ("cert-manager.io", "v1", "certificates")),
}


class KubeApi:
    """A thin, timeout-aware reader over the official client's ApiClient."""

    def __init__(self, api_client: Any, source: str = "") -> None:
        self.api_client = api_client
        self.source = source

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeApi:
        from kubernetes import client, config  # lazy: slow import
        from kubernetes.config.config_exception import ConfigException

        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg,
                                    persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise KubeApiError(f"cannot load kubeconfig {path}: {exc}") from exc
        # One attempt per call: our own timeouts bound the run, urllib3's retries would multiply them.
        cfg.retries = 0
        return cls(client.ApiClient(cfg), source=f"kubeconfig {path}" + (f" (context {context})" if context else ""))

    def close(self) -> None:
        closer = getattr(self.api_client, "close", None)
        if closer:
            closer()

    # ------------------------------------------------------------------ calls
    def _call(self, what: str, fn: Callable[..., Any], timeout: float, budget: float | None = None,
              **kwargs: Any) -> bytes:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            resp = fn(_preload_content=False, _request_timeout=_timeouts(timeout), **kwargs)
            return bytes(resp.data)
        except ApiException as exc:
            raise KubeApiError(f"{what}: HTTP {exc.status} {exc.reason}: {_status_message(exc.body)}",
                               status=exc.status) from exc
        except HTTPError as exc:
            raise KubeApiError(f"{what}: {_transport_error(exc, budget or timeout)}") from exc
        except OSError as exc:
            raise KubeApiError(f"{what}: {exc}") from exc

    def _api(self, kind: str) -> Any:
        from kubernetes import client

        return {"core": client.CoreV1Api, "apps": client.AppsV1Api,
                "custom": client.CustomObjectsApi}[kind](self.api_client)

    def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[JSON]:
        """All objects of a resource, following `continue` pages, within `timeout` in total."""
        lister = _RESOURCES[resource]
        api = self._api(lister.api)
        fn = getattr(api, lister.namespaced if namespace else lister.all_ns)
        args: list[Any] = []
        if lister.crd:
            args.extend(lister.crd[:2])
            if namespace:
                args.append(namespace)
            args.append(lister.crd[2])
        elif namespace:
            args.append(namespace)
        kwargs: JSON = {"limit": PAGE_SIZE}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        deadline = time.monotonic() + timeout
        items: list[JSON] = []
        token: str | None = None
        what = f"list {resource}" + (f" in {namespace}" if namespace else "")
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KubeApiError(f"{what}: timed out after {timeout:g}s while paging")
            if token:
                kwargs["_continue"] = token
            data = self._call(what, lambda **k: fn(*args, **k), min(timeout, remaining), budget=timeout, **kwargs)
            doc = _loads(data, what)
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                return items

    def version(self, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        from kubernetes import client

        return _loads(self._call("GET /version", client.VersionApi(self.api_client).get_code, timeout), "GET /version")

    def pod_log(self, namespace: str, pod: str, container: str | None, *, limit_bytes: int = 8192,
                timestamps: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
        kwargs: JSON = {"timestamps": timestamps, "limit_bytes": limit_bytes}
        if container:
            kwargs["container"] = container
        core = self._api("core")
        data = self._call(f"logs of {namespace}/{pod}", lambda **k: core.read_namespaced_pod_log(pod, namespace, **k),
                          timeout, **kwargs)
        return data.decode("utf-8", "replace")

    def raw_get(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """GET a non-resource path (health endpoints). Returns (status, body); never raises on HTTP codes."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        client = self.api_client
        try:
            if hasattr(client, "param_serialize"):  # kubernetes >= 33 (new generator)
                params = client.param_serialize("GET", path, header_params={"Accept": "text/plain, */*"},
                                                auth_settings=["BearerToken"])
                resp = client.call_api(*params, _request_timeout=_timeouts(timeout))
                resp.read()
                return int(resp.status), (resp.data or b"").decode("utf-8", "replace")
            resp = client.call_api(path, "GET", auth_settings=["BearerToken"], _preload_content=False,
                                   _return_http_data_only=False, _request_timeout=_timeouts(timeout))
            raw = resp[0] if isinstance(resp, tuple) else resp
            return int(raw.status), raw.data.decode("utf-8", "replace")
        except ApiException as exc:
            return int(exc.status or 0), _text(exc.body) or str(exc.reason)
        except HTTPError as exc:
            raise KubeApiError(f"GET {path}: {_transport_error(exc, timeout)}") from exc
        except OSError as exc:
            raise KubeApiError(f"GET {path}: {exc}") from exc


def _timeouts(timeout: float) -> tuple[float, float]:
    """(connect, read) timeouts. A tuple, because kubernetes < 33 silently ignores a float."""
    return (timeout, timeout)


def _text(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        return body.decode("utf-8", "replace")
    return str(body or "")


def _transport_error(exc: Exception, timeout: float) -> str:
    """One readable line for urllib3's nested errors (MaxRetryError wrapping the real cause)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    reason = getattr(exc, "reason", None) or exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, so it is tested first
    if isinstance(reason, NewConnectionError):
        return f"cannot connect: {reason}"
    if isinstance(reason, ReadTimeoutError | ConnectTimeoutError):
        return f"no answer within the timeout {timeout:g}s"
    return f"{type(reason).__name__}: {reason}"


def _loads(data: bytes, what: str) -> JSON:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise KubeApiError(f"{what}: answer is not JSON: {data[:120]!r}") from exc
    if not isinstance(doc, dict):
        raise KubeApiError(f"{what}: unexpected answer {str(doc)[:120]}")
    return doc


def _status_message(body: Any) -> str:
    if not body:
        return ""
    body = _text(body)
    try:
        doc = json.loads(body)
        return str(doc.get("message") or doc)[:300]
    except (ValueError, TypeError, AttributeError):
        return str(body)[:300]
