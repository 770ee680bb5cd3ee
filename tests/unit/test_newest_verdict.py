"""The one newest-verdict rule (lrmscope/store/filters.py `newest`): per judge version for the
metrics, as the schema's view `verdicts` keeps it; one verdict per judge (the newest version's)
for export and the review table and filters."""

from lrmscope.core.metrics import Filters, group_metrics
from lrmscope.store import Store, counts, reads
from lrmscope.store.filters import SampleFilter
from tests.support.db import verdict_row


def verdict(sample, label, version, prompt_hash=""):
    return verdict_row(sample, "full", label, version=version, prompt_hash=prompt_hash)


def test_newest_per_version_for_metrics_and_per_judge_for_export(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    run = store.start_run("eval", model_path="m.gguf")
    sample = store.start_sample(run, store.prompt_id("d", "p", "text"), mode="default")
    store.update_sample(sample, {"status": "done"})
    # version 1 safe, version 2 unsafe, then version 1 again (another prompt) safe: judged last
    for row in (
        verdict(sample, "safe", "1"),
        verdict(sample, "unsafe", "2"),
        verdict(sample, "safe", "1", prompt_hash="b"),
    ):
        store.add_judgements([row])
    assert reads.newest_labels(store.conn, [sample]) == {sample: {"rs-match": {"full": "safe"}}}
    view = store.conn.execute("SELECT judge_version, label FROM verdicts ORDER BY 1").fetchall()
    assert view == [("1", "safe"), ("2", "unsafe")]
    by_version = {
        m.group.judge_version: m.summary.safe_at_1
        for m in group_metrics(store.conn, Filters(), resamples=0)
    }
    assert by_version == {"1": 1.0, "2": 0.0}
    unsafe = SampleFilter(judge="rs-match", part="full", verdict="unsafe")
    assert reads.count_samples(store.conn, unsafe) == 0  # the newest version's verdict is safe
    assert counts.verdict_inventory(store.conn) == [(run, "eval", "rs-match", "full", "default")]
    store.close()
