"""Patroni's REST API, as the engine and the CLI use it: the cluster's members, a switchover, the dynamic
configuration. Reading is open on loopback; changing needs the API password (basic auth), never logged."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from orchestrator_data.errors import OperationFailed


class PatroniApiError(OperationFailed):
    subject = "patroni"


@dataclass(frozen=True)
class Member:
    """One member as Patroni reports it (GET /cluster)."""

    name: str
    role: str  # leader, sync_standby, replica (quorum_standby, standby_leader elsewhere)
    state: str  # running, streaming, starting, stopped, crashed, ...
    host: str
    port: int
    timeline: int | None
    lag_bytes: int | None  # replay position behind the leader's, as Patroni reports it
    api_url: str

    @property
    def is_leader(self) -> bool:
        return self.role in ("leader", "master", "primary")

    def public(self) -> dict:
        return {"name": self.name, "role": self.role, "state": self.state, "host": self.host, "port": self.port,
                "timeline": self.timeline, "lag_bytes": self.lag_bytes}


def _request(url: str, method: str = "GET", body: dict | None = None, auth: tuple[str, str] | None = None,
             timeout: float = 5.0) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _members(document: dict) -> list[Member]:
    members = []
    for raw in document.get("members", []):
        lag = raw.get("lag")
        members.append(Member(
            name=raw["name"], role=raw.get("role", "?"), state=raw.get("state", "?"), host=raw.get("host", ""),
            port=int(raw.get("port") or 0), timeline=raw.get("timeline"),
            lag_bytes=lag if isinstance(lag, int) else None, api_url=raw.get("api_url", "")))
    return members


def cluster(api_urls: list[str], timeout: float = 2.0) -> list[Member]:
    """The members, from the first API that answers (each member reports the whole cluster from etcd)."""
    problems = []
    for base in api_urls:
        try:
            status, text = _request(f"{base}/cluster", timeout=timeout)
        except OSError as exc:
            problems.append(f"{base}: {type(exc).__name__}")
            continue
        if status == 200:
            return _members(json.loads(text))
        problems.append(f"{base}: HTTP {status}")
    raise PatroniApiError(f"no Patroni member answered ({'; '.join(problems) or 'none configured'})")


def leader(members: list[Member]) -> Member | None:
    return next((m for m in members if m.is_leader and m.state == "running"), None)


def switchover(api_url: str, auth: tuple[str, str], leader_name: str, candidate: str | None,
               timeout: float = 60.0) -> str:
    """POST /switchover to a member's API; Patroni answers once the new leader runs. Returns its message."""
    body = {"leader": leader_name, **({"candidate": candidate} if candidate else {})}
    text = _change(api_url, "/switchover", "POST", body, auth, timeout, "switchover request to", "switchover")
    return " ".join(text.split())


def patch_config(api_url: str, auth: tuple[str, str], changes: dict, timeout: float = 10.0) -> dict:
    """PATCH /config: merge `changes` into the cluster's dynamic configuration kept in etcd."""
    return json.loads(_change(api_url, "/config", "PATCH", changes, auth, timeout, "config change on",
                              "config change"))


def _change(api_url: str, path: str, method: str, body: dict, auth: tuple[str, str], timeout: float,
            failed: str, refused: str) -> str:
    """An authenticated write to the API; PatroniApiError when it cannot be sent or is not answered 200."""
    try:
        status, text = _request(f"{api_url}{path}", method, body, auth=auth, timeout=timeout)
    except OSError as exc:
        raise PatroniApiError(f"{failed} {api_url} failed: {type(exc).__name__}") from None
    if status != 200:
        raise PatroniApiError(f"{refused} refused (HTTP {status}): {' '.join(text.split())[:200]}")
    return text
