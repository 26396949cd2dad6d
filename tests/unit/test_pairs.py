from pathlib import Path

import pytest

from cdfv.data.pairs import PairsFormatError, check_pairs_reference, image_id, parse_pairs


def test_official_view2_pairs(shared_dir: Path) -> None:
    pairs = parse_pairs((shared_dir / "fixtures/lfw/pairs.txt").read_text())
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    assert {p.fold for p in pairs} == set(range(10))
    # per fold: 300 matched then 300 mismatched
    fold3 = [p for p in pairs if p.fold == 3]
    assert [p.same for p in fold3] == [True] * 300 + [False] * 300
    assert (
        pairs[0].left_id == "Abel_Pacheco/Abel_Pacheco_0001" and pairs[0].right_id == "Abel_Pacheco/Abel_Pacheco_0004"
    )


def test_fixture_pairs(shared_dir: Path) -> None:
    pairs = parse_pairs((shared_dir / "fixtures/lfw-mini/pairs.txt").read_text())
    assert len(pairs) == 76 and sum(p.same for p in pairs) == 38
    assert {p.fold for p in pairs} == {0, 1}


def test_mismatched_line_and_ids() -> None:
    text = "1\t1\nA\t1\t2\nA\t1\tB\t3\n"
    same, diff = parse_pairs(text)
    assert same.same and same.left_id == image_id("A", 1) == "A/A_0001" and same.right_id == "A/A_0002"
    assert not diff.same and diff.right_id == "B/B_0003" and diff.line == 3


@pytest.mark.parametrize(
    "text, msg",
    [
        ("", "empty file"),
        ("x\ty\n", "bad header"),
        ("1\t1\nA\t1\t2\n", "found 1 lines"),
        ("1\t1\nA\t1\nA\t1\tB\t3\n", "pairs.txt:2"),
        ("1\t1\nA\t1\t2\nA\t1\tB\n", "pairs.txt:3"),
        ("1\t1\nA\tx\t2\nA\t1\tB\t3\n", "pairs.txt:2"),
    ],
)
def test_malformed(text: str, msg: str) -> None:
    with pytest.raises(PairsFormatError, match=msg):
        parse_pairs(text)


def test_missing_image_names_line() -> None:
    pairs = parse_pairs("1\t1\nA\t1\t2\nA\t1\tB\t3\n")
    with pytest.raises(PairsFormatError, match=r"line 3: B/B_0003"):
        check_pairs_reference(pairs, {"A/A_0001", "A/A_0002"})
