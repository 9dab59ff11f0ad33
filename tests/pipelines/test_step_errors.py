"""A failed step is reported by its own last exception line, also when torch.distributed prefixes it."""

from pipelines.local import _last_error


def test_the_last_exception_line_of_a_rank_traceback_is_the_cause(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text(
        "    [rank0]: Traceback (most recent call last):\n"
        '    [rank0]:   File "components/train/trainer.py", line 210, in run\n'
        "    [rank0]: components.train.config.TrainConfigError: data.batch_size=0 must be >= 1\n"
        "01:14:52.727 - ERROR - Task 'train' finished with status FAILURE\n"
    )
    assert _last_error(log) == "TrainConfigError: data.batch_size=0 must be >= 1"


def test_a_log_without_an_exception_names_no_cause(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text("Task 'train' finished with status FAILURE\n")
    assert _last_error(log) is None
