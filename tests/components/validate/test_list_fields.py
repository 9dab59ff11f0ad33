"""Every element of a numeric list field is checked: a NaN that is not first used to pass."""

import math

from components.validate import validate_dataset


def test_nan_null_and_infinity_anywhere_in_a_list_are_reported(variant, tmp_path):
    def corrupt(rows, root):
        s0, s1, s2 = rows
        s0["entities"][0]["scores"] = [0.9, math.nan, 0.7]  # min()/max() skip a NaN that is not first
        s0["entities"][1]["areas"] = [0.1, 0.2, math.nan]
        s1["entities"][0]["scores"] = [0.9, None, 0.7]
        s1["entities"][1]["boxes"] = [
            [2.0, 3.0, 20.0, 30.0],
            [2.0, math.inf, 20.0, 30.0],
            [2.0, 3.0, 20.0, 30.0],
        ]
        s2["entities"][1]["areas"] = [0.1, 1.5, 0.2]  # out of range, not first: the max check sees it

    outcome = validate_dataset(variant(corrupt), tmp_path / "report")
    failed = {(f.table, f.column): sorted(f.row_ids) for f in outcome.failures}
    assert failed == {
        ("entities", "scores_finite"): ["s0:dog", "s1:dog"],
        ("entities", "areas_finite"): ["s0:ball"],
        ("entities", "boxes_finite"): ["s1:ball"],
        ("entities", "boxes_in_frame"): ["s1:ball"],
        ("entities", "max_area"): ["s2:ball"],
    }


def test_non_finite_fields_names_each_list_with_a_bad_element():
    """The row-level check training can call without running the suite."""
    from components.validate.tables import non_finite_fields

    good = {"scores": [0.9, 0.8], "areas": [0.1, 0.2], "boxes": [[1.0, 2.0, 3.0, 4.0]]}
    assert non_finite_fields(good) == []
    assert non_finite_fields({**good, "scores": [0.9, math.nan]}) == ["scores"]
    assert non_finite_fields({**good, "areas": [0.1, None], "boxes": [[1.0, 2.0, math.inf, 4.0]]}) == [
        "areas",
        "boxes",
    ]
    assert non_finite_fields({**good, "boxes": [None]}) == ["boxes"]
