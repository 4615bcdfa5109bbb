"""The key browser: find keys with SCAN, look inside one, delete it, set or clear its TTL.

Keys travel between pages as hex (`key_hex`), so binary keys and keys holding glob
specials (`[`, `]`, `?`, `*`, `\\`) are addressed exactly, never as patterns.
"""

import json
from typing import Any

from opsconsole import audit
from opsconsole.actions import audited_action

from .. import targets

PREVIEW_BYTES = 4096
PREVIEW_ITEMS = 100
ITEM_CHARS = 300
HEXDUMP_BYTES = 512


def key_to_hex(key: bytes) -> str:
    return key.hex()


def key_from_hex(value: str) -> bytes:
    """Raises ValueError on anything that is not an even-length hex string."""
    return bytes.fromhex(value)


def show(value: bytes | str) -> str:
    """Text safe to print: UTF-8 as it is, other bytes as \\xNN escapes."""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", errors="backslashreplace")


PAGE_SIZES = (50, 100, 500)


def search(
    target: str,
    pattern: str = "*",
    cursor: int = 0,
    page_size: int = 50,
    max_rounds: int = 50,
    listed_before: int = 0,
) -> dict[str, Any]:
    """One page of keys matching `pattern`: SCAN … MATCH … COUNT 1000 until a page is full
    (or `max_rounds` round trips), then TYPE, PTTL and MEMORY USAGE for those keys only.

    On a cluster the primaries are walked one after the other behind one combined cursor:
    `node cursor × number of primaries + node index` (so on one node it is Redis' own)."""
    primaries = targets.primaries(target)
    index, node_cursor = cursor % len(primaries), cursor // len(primaries)
    found: list[tuple[targets.Node, list[bytes]]] = []
    listed = 0
    try:
        for _ in range(max_rounds):
            node = primaries[index]
            node_cursor, keys = node.client.scan(node_cursor, match=pattern, count=1000)
            found.append((node, keys))
            listed += len(keys)
            if node_cursor == 0:
                index += 1
            if index == len(primaries) or listed >= page_size:
                break
        rows = [row for node, keys in found for row in describe(node.client, keys, node.name)]
        total = sum(int(node.client.dbsize()) for node in primaries)
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    done = index == len(primaries)
    return {
        "keys": rows,
        "cursor": 0 if done else int(node_cursor) * len(primaries) + index,
        "done": done,
        "listed_so_far": listed_before + len(rows),
        "total_keys": total,
        "nodes": len(primaries),
    }


def describe(client, keys: list[bytes], node: str = "") -> list[dict[str, Any]]:
    """TYPE, PTTL and MEMORY USAGE of a page of keys in one pipeline (a key that expired
    since the SCAN comes back as type "none" and is marked gone)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
        pipe.memory_usage(key)
    answers = pipe.execute(raise_on_error=False)
    rows = []
    for index, key in enumerate(keys):
        kind, pttl, size = answers[3 * index : 3 * index + 3]
        kind = show(kind) if isinstance(kind, bytes | str) else "?"
        rows.append(
            {
                "key": show(key),
                "hex": key_to_hex(key),
                "type": kind,
                "ttl": ttl_text(pttl) if kind != "none" else "expired",
                "size": size if isinstance(size, int) else None,
                "gone": kind == "none",
                "node": node,
            }
        )
    return rows


def ttl_text(pttl: int) -> str:
    if pttl == -1:
        return "no TTL"
    if pttl < 0:
        return "expired"
    seconds = pttl / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def inspect(target: str, key: bytes) -> dict[str, Any]:
    """Type, TTL, size and a bounded preview of one key (a few KB, the first 100 items)."""
    client = targets.connect(target)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.type(key)
        pipe.pttl(key)
        pipe.memory_usage(key)
        kind, pttl, size = pipe.execute(raise_on_error=False)
        kind = show(kind)
        detail = {
            "key": show(key),
            "hex": key_to_hex(key),
            "type": kind,
            "pttl": pttl,
            "ttl": ttl_text(pttl),
            "size": size if isinstance(size, int) else None,
            "exists": kind != "none",
        }
        if detail["exists"]:
            detail.update(_preview(client, key, kind))
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    return detail


def _preview(client, key: bytes, kind: str) -> dict[str, Any]:
    if kind == "string":
        length = client.strlen(key)
        head = client.getrange(key, 0, PREVIEW_BYTES - 1)
        return {"length": length, **preview_bytes(head, truncated=length > len(head))}
    if kind == "hash":
        _, fields = client.hscan(key, 0, count=PREVIEW_ITEMS)
        items = [(show(f), _clip(v)) for f, v in list(fields.items())[:PREVIEW_ITEMS]]
        return {"length": client.hlen(key), "rows": items, "columns": ("field", "value")}
    if kind == "list":
        items = [(str(i), _clip(v)) for i, v in enumerate(client.lrange(key, 0, PREVIEW_ITEMS - 1))]
        return {"length": client.llen(key), "rows": items, "columns": ("index", "value")}
    if kind == "set":
        _, members = client.sscan(key, 0, count=PREVIEW_ITEMS)
        items = [("", _clip(m)) for m in members[:PREVIEW_ITEMS]]
        return {"length": client.scard(key), "rows": items, "columns": ("", "member")}
    if kind == "zset":
        pairs = client.zrange(key, 0, PREVIEW_ITEMS - 1, withscores=True)
        items = [(f"{score:g}", _clip(m)) for m, score in pairs]
        return {"length": client.zcard(key), "rows": items, "columns": ("score", "member")}
    if kind == "stream":
        entries = client.xrange(key, count=20)
        items = [
            (show(entry_id), _clip(json.dumps({show(k): show(v) for k, v in f.items()})))
            for entry_id, f in entries
        ]
        return {"length": client.xlen(key), "rows": items, "columns": ("id", "fields")}
    return {"text": f"({kind} values are not previewed)"}


def _clip(value: bytes | str) -> str:
    text = show(value)
    return text if len(text) <= ITEM_CHARS else text[:ITEM_CHARS] + "…"


def preview_bytes(data: bytes, truncated: bool) -> dict[str, Any]:
    """Pretty JSON, plain text, or a hex dump for binary data."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (truncated and exc.start >= len(data) - 3):
            return {"format": "binary", "text": hexdump(data[:HEXDUMP_BYTES]), "truncated": True}
        text = data[: exc.start].decode("utf-8")  # cut inside a multi-byte character
    if not truncated:
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(parsed, dict | list):
                pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
                return {"format": "json", "text": pretty, "truncated": False}
    return {"format": "text", "text": text, "truncated": truncated}


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  {ascii_}")
    return "\n".join(lines)


# --- changes ---------------------------------------------------------------------


@audited_action("cache.delete_key")
def delete_key(target: str, key: bytes, actor: audit.Actor, ip_address: str | None = None) -> int:
    """UNLINK one key (exactly this key: no pattern). Returns 1 if it existed, else 0.
    Not undoable from here: the owner's loader or a warmer writes it again."""
    client = targets.connect(target)
    with audit.record(
        actor, "cache.delete_key", f"{target}:{show(key)}", ip_address=ip_address, key=show(key)
    ) as event:
        try:
            deleted = int(client.unlink(key))
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params["deleted"] = deleted
    return deleted


@audited_action("cache.set_ttl")
def set_ttl(
    target: str,
    key: bytes,
    seconds: int | None,
    actor: audit.Actor,
    ip_address: str | None = None,
) -> bool:
    """Give a key a TTL (EXPIRE) or clear it (PERSIST when `seconds` is None).
    The previous TTL goes into the audit event, so the change can be set back by hand."""
    client = targets.connect(target)
    with audit.record(
        actor, "cache.set_ttl", f"{target}:{show(key)}", ip_address=ip_address, key=show(key)
    ) as event:
        try:
            previous = int(client.pttl(key))
            if previous == -2:
                changed = False
            elif seconds is None:
                changed = bool(client.persist(key))
            else:
                changed = bool(client.expire(key, seconds))
        except targets.REDIS_FAULTS as exc:
            raise targets.unavailable(target, exc) from exc
        event.params.update(
            ttl_seconds=seconds,
            previous_ttl_ms=previous,
            changed=changed,
            keys_changed=int(changed),
        )
    return changed
