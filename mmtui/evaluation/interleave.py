"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): one list made of two rankings, so a person's
judgements say which ranker they prefer without them knowing which result came from which.

Each round the ranker with fewer picks so far (a coin toss on a tie) adds its best result not yet in the list,
and that result joins its team. A judged result credits its team with its grade (2 relevant, 1 partly, 0 none);
the ranker with more credit on a query wins it.
"""

from __future__ import annotations

import hashlib
import random
from typing import Mapping, Sequence

A, B = "A", "B"


def seeded(*parts: str) -> random.Random:
    """The same query and rankers interleave the same way every time (a judged list does not reshuffle)."""
    return random.Random(int(hashlib.sha1("\t".join(parts).encode("utf-8")).hexdigest()[:12], 16))


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: random.Random) -> list[tuple[str, str]]:
    """[(id, team)] of up to k results: team A's picks come from `a`, B's from `b`, in their own order."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    ia = ib = picks_a = picks_b = 0
    while len(out) < k:
        while ia < len(a) and a[ia] in seen:
            ia += 1
        while ib < len(b) and b[ib] in seen:
            ib += 1
        if ia >= len(a) and ib >= len(b):
            break
        take_a = ib >= len(b) or (ia < len(a) and (picks_a < picks_b or (picks_a == picks_b and rng.random() < 0.5)))
        if take_a:
            out.append((a[ia], A))
            seen.add(a[ia])
            picks_a += 1
        else:
            out.append((b[ib], B))
            seen.add(b[ib])
            picks_b += 1
    return out


def credit(teams: Sequence[tuple[str, str]], grades: Mapping[str, int]) -> tuple[float, float, int]:
    """(credit A, credit B, results judged) of an interleaved list."""
    ca = cb = 0.0
    judged = 0
    for pid, team in teams:
        if pid not in grades:
            continue
        judged += 1
        if team == A:
            ca += grades[pid]
        else:
            cb += grades[pid]
    return ca, cb, judged
