"""Parse LFW View-2 style ``pairs.txt`` files (pure; no I/O beyond the text passed in).

Header ``<folds>\\t<n>`` then, per fold, ``n`` matched lines ``name i j`` followed by ``n`` mismatched
lines ``name1 i name2 j``. The official file has 10 x (300 + 300) = 6,000 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdfv.errors import CdfvError


class PairsFormatError(CdfvError, ValueError):
    """A malformed pairs file; the message carries the source name and line number."""


@dataclass(frozen=True)
class Pair:
    pair_id: int
    fold: int
    left_id: str
    right_id: str
    same: bool
    line: int  # 1-based line number in the source file


def image_id(name: str, index: int) -> str:
    """LFW image id: ``Aaron_Eckhart`` + 1 -> ``Aaron_Eckhart/Aaron_Eckhart_0001``."""
    return f"{name}/{name}_{index:04d}"


def parse_pairs(text: str, source: str = "pairs.txt") -> list[Pair]:
    lines = [ln for ln in text.splitlines()]
    if not lines or not lines[0].strip():
        raise PairsFormatError(f"{source}:1: empty file, expected a '<folds>\\t<n>' header")
    head = lines[0].split()
    try:
        folds, n = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
    except (ValueError, IndexError):
        raise PairsFormatError(f"{source}:1: bad header {lines[0]!r}, expected '<folds>\\t<n>'") from None
    body = [(i + 2, ln) for i, ln in enumerate(lines[1:]) if ln.strip()]
    expected = folds * 2 * n
    if len(body) != expected:
        raise PairsFormatError(
            f"{source}: header says {folds} folds x (2 x {n}) = {expected} pairs, found {len(body)} lines"
        )
    pairs: list[Pair] = []
    for k, (lineno, ln) in enumerate(body):
        fold, within = divmod(k, 2 * n)
        same = within < n
        f = ln.split()
        try:
            if same:
                if len(f) != 3:
                    raise ValueError("matched pair needs 'name i j'")
                left, right = image_id(f[0], int(f[1])), image_id(f[0], int(f[2]))
            else:
                if len(f) != 4:
                    raise ValueError("mismatched pair needs 'name1 i name2 j'")
                left, right = image_id(f[0], int(f[1])), image_id(f[2], int(f[3]))
        except ValueError as err:
            raise PairsFormatError(f"{source}:{lineno}: {err}: {ln!r}") from None
        pairs.append(Pair(k, fold, left, right, same, lineno))
    return pairs


def check_pairs_reference(pairs: list[Pair], known_ids: set[str], source: str = "pairs.txt") -> None:
    """Raise naming the first few lines whose images are not in ``known_ids``."""
    bad = [(p.line, i) for p in pairs for i in (p.left_id, p.right_id) if i not in known_ids]
    if bad:
        shown = ", ".join(f"line {ln}: {i}" for ln, i in bad[:5])
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise PairsFormatError(f"{source}: pairs name images missing from the dataset: {shown}{more}")
