"""What an attacker gets from one address (docs/SECURITY.md), measured for
docs/RELIABILITY.md by `bench/reliability.py` against a real `manage.py serve` with the
default limits. Each function takes a started server (`reliability.Server`).
"""

import contextlib
import re
import socket
import time
from typing import Any

import httpx

# The body an unauthenticated client announces to the login endpoint.
ANNOUNCED_MB = 300


def logins_across_forms(server: Any, attempts: int = 30) -> dict:
    """Wrong passwords, alternating the API's login and the admin's form: one budget."""
    codes = []
    with httpx.Client(base_url=server.url) as admin:
        for n in range(attempts):
            if n % 2:
                form = admin.get("/admin/login/")
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
                answer = admin.post(
                    "/admin/login/",
                    data={
                        "username": "admin",
                        "password": f"guess{n}",
                        "csrfmiddlewaretoken": token.group(1) if token else "",
                    },
                )
            else:
                answer = httpx.post(
                    f"{server.url}/api/auth/login/",
                    json={"username": "admin", "password": f"guess{n}"},
                )
            codes.append(answer.status_code)
    allowed = sum(c != 429 for c in codes)
    return {"attempts": attempts, "allowed": allowed, "refused": codes.count(429)}


def oversized_body(server: Any) -> dict:
    """Announce ANNOUNCED_MB to the login endpoint and keep sending 1 MiB blocks until
    the server answers: how much it took in, what it answered, what it cost in memory."""
    before = server.rss_kib()
    block = b"x" * (1024 * 1024)
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(
            (
                f"POST /api/auth/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\n"
                f"Content-Length: {ANNOUNCED_MB * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        conn.settimeout(0.05)
        answer = b""
        while sent < ANNOUNCED_MB * 1024 * 1024:
            with contextlib.suppress(TimeoutError):
                answer += conn.recv(4096)
            if answer:
                break
            try:
                conn.sendall(block)
            except OSError:
                break
            sent += len(block)
        conn.settimeout(5)
        try:
            while b"\r\n\r\n" not in answer:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    return {
        "status": status,
        "sent_mib": sent // (1024 * 1024),
        "answered_in_s": round(time.monotonic() - started, 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(server.rss_kib() / 1024, 1),
    }


def slow_heads(server: Any, connections: int = 40) -> dict:
    """`connections` from one address, each sending one header line and no more (the
    slow-headers attack): how many the server refused at once, when it cut the others,
    and whether a request from another address was still served meanwhile."""
    opened: list[socket.socket] = []
    began = time.monotonic()
    for _ in range(connections):
        conn = socket.create_connection(("127.0.0.1", server.port))
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        opened.append(conn)
    time.sleep(0.5)
    refused_at_once = sum(_closed(conn, wait=0.05) for conn in opened)
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    served_meanwhile = other.get(f"{server.url}/healthz").status_code == 200
    waiting = [conn for conn in opened if not _closed(conn, wait=0)]
    deadline = began + 60
    while waiting and time.monotonic() < deadline:
        waiting = [conn for conn in waiting if not _closed(conn, wait=0.2)]
    cut_after = round(time.monotonic() - began, 1)
    for conn in opened:
        conn.close()
    return {
        "connections": connections,
        "refused_at_once": refused_at_once,
        "still_open_after_60s": len(waiting),  # of opening
        "others_cut_within_s": cut_after,
        "another_address_served": "yes" if served_meanwhile else "no",
    }


def _closed(conn: socket.socket, *, wait: float) -> bool:
    """Whether the server has ended this connection (an answer or EOF counts)."""
    conn.settimeout(wait or 0.001)
    try:
        data = conn.recv(65536, socket.MSG_PEEK)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


def write_flood(server: Any, changes: int = 120) -> dict:
    """One account toggles a reaction `changes` times as fast as it can: how many
    changes the others would see (WRITE_RATE_LIMIT, 60/min by default)."""
    token = server.register("flooder")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=auth) as client:
        client.post("/api/rooms/1/join/").raise_for_status()  # one change of the budget
        posted = client.post("/api/rooms/1/messages/", json={"content": "react to me"})
        posted.raise_for_status()
        reactions = f"/api/messages/{posted.json()['id']}/reactions/"
        made, refused, present = 0, 0, False
        for _ in range(changes):
            if present:
                answer = client.delete(f"{reactions}👍/")
            else:
                answer = client.post(reactions, json={"emoji": "👍"})
            if answer.status_code == 429:
                refused += 1
            elif answer.is_success:
                made, present = made + 1, not present
    return {"changes": changes, "allowed": made, "refused": refused}


def rows(a: dict) -> str:
    """The figures of the four attacks as rows of docs/RELIABILITY.md's table."""
    logins, body, heads, writes = a["logins"], a["body"], a["heads"], a["writes"]
    table = [
        (
            f"{logins['attempts']} wrong passwords in a few seconds, alternating the API's "
            "login and `/admin/login/`",
            f"{logins['allowed']} checked, {logins['refused']} refused with 429 (one "
            "`AUTH_RATE_LIMIT` of 10/min for every form)",
        ),
        (
            f"an unauthenticated POST announcing {ANNOUNCED_MB} MB to the login, sent in "
            "1 MiB blocks",
            f"answered {body['status']} after {body['sent_mib']} MiB in "
            f"{body['answered_in_s']} s; server RSS {body['rss_before_mib']} MiB before, "
            f"{body['rss_after_mib']} MiB after",
        ),
        (
            f"{heads['connections']} connections that send one header line and stop (slow headers)",
            f"{heads['refused_at_once']} closed at once (32 pending heads per address), the "
            f"rest cut {heads['others_cut_within_s']} s after they opened "
            f"({heads['still_open_after_60s']} still open after 60 s); another address "
            f"served meanwhile: {heads['another_address_served']}",
        ),
        (
            f"one account joining General, then toggling a reaction {writes['changes']} "
            "times as fast as it can",
            f"{writes['allowed']} reaction changes made (and the join), {writes['refused']} "
            "refused with 429 (`WRITE_RATE_LIMIT` 60/min)",
        ),
    ]
    return "\n".join(f"| {what} | {outcome} |" for what, outcome in table)
