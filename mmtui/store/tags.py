"""Reading the zero-shot image tags that mmtui.build.enrich stored (table product_tags), for search and front ends."""

from __future__ import annotations

from typing import Any

CONFLICT = "conflict"  # the vocab of a product_tags row flagging text that contradicts the image


def product_tags(store: Any, rowid: int) -> dict[str, list[tuple[str, float]]]:
    """vocab -> [(tag, score)] best first, for one product (conflicts under "conflict")."""
    out: dict[str, list[tuple[str, float]]] = {}
    for vocab, tag, score in store.db.execute(
            "SELECT vocab, tag, score FROM product_tags WHERE product_rowid = ? ORDER BY vocab, rank", [rowid]):
        out.setdefault(vocab, []).append((tag, score))
    return out


def conflicts(store: Any, limit: int = 50) -> list[dict]:
    """Products whose text contradicts their image, strongest first: id, title, colour, detail, margin."""
    rows = store.db.execute(
        "SELECT p.id, p.title, p.colour, t.tag, t.score FROM product_tags t JOIN products p ON p.rowid = "
        "t.product_rowid WHERE t.vocab = ? ORDER BY t.score DESC LIMIT ?", [CONFLICT, limit]).fetchall()
    return [{"id": pid, "title": title, "colour": colour, "detail": tag, "margin": score}
            for pid, title, colour, tag, score in rows]
