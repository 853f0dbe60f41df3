"""The benchmark's helpers: Kannel's figures read from its script, a profile summed by part."""

from pathlib import Path

from dispatcher import flame
from dispatcher.versus_kannel import Side, read_kannel

KANNEL_OUTPUT = """kannel end-to-end: 4789.2 msg/s
kannel submit: 6441.4 msg/s
  CPU over the end-to-end window (100% = one core; machine has 2): bearerbox 2.1s (50%)
  Kannel CPU per message: 271 us (bearerbox 104 + smsbox 167), i.e. 3690 msg/s per fully used core
  verdict: trustworthy
"""


def test_kannel_figures_are_read_from_its_script() -> None:
    assert read_kannel(KANNEL_OUTPUT) == Side(4789.2, 271.0)
    assert read_kannel("kannel end-to-end: FAILED (deadline 600s: 12 of 20000 receipts)") is None


def test_a_profile_is_summed_by_part_of_the_path(tmp_path: Path) -> None:
    raw = tmp_path / "profile.raw"
    worker = 'process 1:"python -m dispatcher worker"'
    raw.write_text(
        f"{worker};BindSession._pump (dispatcher/sending/bind.py:10);"
        "read_pdus (dispatcher/sending/fastpdu.py:3) 30\n"
        f"{worker};_run (x.py:1);claim (dispatcher/sending/claims.py:99) 50\n"
        f"{worker};_find_and_load (<frozen importlib._bootstrap>:1) 500\n"
        'process 2:"python -m dispatcher api";claim (dispatcher/sending/claims.py:99) 70\n'
        f"{worker};something_else (y.py:2) 20\n"
    )
    samples = flame.summarise(raw)
    assert samples["SMPP PDUs: fast path"] == 30
    assert samples["claims (database)"] == 50  # the API's samples are not a worker's
    assert samples["start-up (imports)"] == 500
    assert samples[flame.OTHER] == 20
