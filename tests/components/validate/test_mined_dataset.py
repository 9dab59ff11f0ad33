"""The suite on a dataset the real miner produced from the generated embedded clips."""

import pytest

embedded = pytest.importorskip("components.embedded")
mine_run = pytest.importorskip("components.mine.run")


def test_mined_embedded_dataset_passes(tmp_path):
    from components.validate import validate_dataset

    source = embedded.generate_embedded_dataset(tmp_path / "embedded", samples=4, progress=False)
    mined = mine_run.mine_dataset(
        str(source.videos), str(source.captions), str(tmp_path / "mined"), progress=False
    )
    assert mined.samples > 0

    outcome = validate_dataset(mined.out, tmp_path / "report")
    assert outcome.success, outcome.summary()
    assert outcome.statistics["num_samples"] == mined.samples
    assert outcome.statistics["num_entities"] >= mined.samples
