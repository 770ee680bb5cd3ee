"""The report's box plots are drawn from the tallies' (length, how many) pairs: their numbers are
those of the lengths written out one by one."""

import statistics

from hypothesis import given
from hypothesis import strategies as st

from lrmscope.core.figures import box_stats


@given(st.dictionaries(st.integers(0, 5000), st.integers(1, 20), min_size=1, max_size=40))
def test_box_stats_of_a_histogram_are_those_of_its_values(counts):
    histogram = sorted(counts.items())
    values = [value for value, n in histogram for _ in range(n)]
    found = box_stats(histogram)
    n = len(values)
    assert found["med"] == statistics.median(values)
    q3 = values[-(-3 * (n - 1) // 4)]
    assert (found["q1"], found["q3"]) == (values[(n - 1) // 4], q3)
    assert found["q1"] <= found["med"] <= found["q3"]
    reach = 1.5 * (found["q3"] - found["q1"])
    inside = [v for v in values if found["q1"] - reach <= v <= found["q3"] + reach]
    assert (found["whislo"], found["whishi"]) == (min(inside), max(inside))
