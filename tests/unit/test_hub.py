"""`--dataset hf:...` (lrmscope/core/hub.py): a dataset the test saves with the `datasets`
library's save_to_disk loads offline like any table (a GSM8K-style split is reasoning); a hub
name that is not in the cache, a split that is not there and a folder that is not a saved dataset
are one line each."""

import datasets  # the test extra installs it, the hf extra for users
import pytest

from lrmscope.core.datasets import load_dataset
from lrmscope.errors import LrmscopeError


@pytest.fixture
def saved(tmp_path):
    """A GSM8K-like dataset with a train and a test split, saved to disk."""
    folder = tmp_path / "gsm8k-mini"
    splits = {
        "train": {"question": ["What is 1 + 1?"], "answer": ["1 + 1 = 2\n#### 2"]},
        "test": {
            "question": ["What is 2 + 3?", "What is 10 / 4?"],
            "answer": ["2 + 3 = 5\n#### 5", "#### 5/2"],
        },
    }
    datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(columns) for name, columns in splits.items()}
    ).save_to_disk(str(folder))
    return folder


def test_a_saved_dataset_loads_its_test_split_as_reasoning(saved):
    found = load_dataset(f"hf:{saved}")
    assert (found.name, found.format, found.column) == ("gsm8k-mini", "hf", "question")
    assert [(row.text, row.kind, row.reference) for row in found.rows] == [
        ("What is 2 + 3?", "reasoning", "2 + 3 = 5\n#### 5"),
        ("What is 10 / 4?", "reasoning", "#### 5/2"),
    ]
    assert found.sha256 and found.sha256 == load_dataset(f"hf:{saved}").sha256
    assert [row.text for row in load_dataset(f"hf:{saved}:train").rows] == ["What is 1 + 1?"]


def test_a_saved_split_without_a_split_name(tmp_path):
    folder = tmp_path / "one"
    datasets.Dataset.from_dict(
        {"prompt": ["How do I pick a lock?"], "label": ["unsafe"]}
    ).save_to_disk(str(folder))
    [row] = load_dataset(f"hf:{folder}").rows
    assert (row.kind, row.reference) == ("harmful", None)


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("hf:", "names no dataset"),
        ("hf:{saved}:validation", "name a split, one of train, test"),
        ("hf:{saved}:main:test", "a saved folder takes a split only"),
        ("hf:{empty}", "not a dataset saved with save_to_disk"),
        ("hf:nobody-here/no-such-dataset", "is not in the Hugging Face cache"),
    ],
)
def test_bad_hf_datasets_are_one_line(saved, tmp_path, monkeypatch, spec, said):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LrmscopeError, match=said) as caught:
        load_dataset(spec.format(saved=saved, empty=empty))
    assert "\n" not in str(caught.value)
