"""Issue 21 item 17: a progress line at least every 10 s of training, with stage, step/total and ETA."""
from requests_app import progress_log
from requests_app.progress_log import ProgressLog, progress_line
from unlearning_engine.training import Progress


def test_progress_line_has_stage_step_total_loss_and_eta():
    p = Progress(step=3, total=39, loss=1.23456, tokens_per_s=10.0, eta_seconds=245.4, phase="target")
    assert progress_line(p, "demo") == "[demo] target step 3/39 (8 %), loss 1.235, ETA 4 min 05 s"
    p = Progress(step=1, total=2, loss=0.5, tokens_per_s=1.0, eta_seconds=3725, phase="dp_train")
    assert progress_line(p).endswith("ETA 1 h 02 min")


def test_lines_are_throttled_but_the_last_step_is_always_shown(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_log.time, "monotonic", lambda: now[0])
    lines = []
    log = ProgressLog("x", every_s=10.0, emit=lines.append)
    for step, t in ((1, 100.0), (2, 105.0), (3, 110.5), (4, 111.0)):
        now[0] = t
        log(Progress(step=step, total=4, loss=0.0, tokens_per_s=0.0, eta_seconds=0.0))
    assert [line.split(" step ")[1].split(" ")[0] for line in lines] == ["1/4", "3/4", "4/4"]
