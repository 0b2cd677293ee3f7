"""loadtests.paired, what `bench --against` and `cpu_probe --against` compare by: medians of
rounds measured in turns, the rounds each side won, and the other side's store settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtests import bench, cpu_probe
from loadtests.paired import describe_other_side, order_of_round, other_side_env, paired


def test_a_paired_figure_is_the_medians_and_the_rounds_this_side_won() -> None:
    figure = paired(then=[2.0, 4.0, 3.0, 10.0], now=[1.5, 4.5, 2.0, 1.0])
    assert (figure.then, figure.now) == (3.5, 1.75)
    assert (figure.lower, figure.rounds) == (3, 4)
    assert figure.change == -50.0


def test_a_paired_figure_needs_the_same_rounds_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same rounds"):
        paired(then=[1.0, 2.0], now=[1.0])
    with pytest.raises(ValueError, match="same rounds"):
        paired(then=[], now=[])


def test_the_side_that_goes_first_swaps_every_round() -> None:
    assert [order_of_round(n) for n in range(3)] == [
        ("against", "this"),
        ("this", "against"),
        ("against", "this"),
    ]


def test_the_other_side_runs_its_own_code_first_and_its_own_settings(tmp_path: Path) -> None:
    env = other_side_env(tmp_path, ["SHOPKEEP_THREADS=4", "SHOPKEEP_LOG_LEVEL=WARNING"])
    assert env == {
        "PYTHONPATH": f"{tmp_path / 'server'}{os.pathsep}{tmp_path}",
        "SHOPKEEP_THREADS": "4",
        "SHOPKEEP_LOG_LEVEL": "WARNING",
    }
    assert other_side_env(None, ["A=b=c"]) == {"A": "b=c"}
    assert describe_other_side(None, ["SHOPKEEP_THREADS=4"]) == (
        "this code with SHOPKEEP_THREADS=4"
    )
    assert describe_other_side(tmp_path, []) == str(tmp_path.resolve())


@pytest.mark.parametrize("setting", ["SHOPKEEP_THREADS", "=4"])
@pytest.mark.parametrize("main", [bench.main, cpu_probe.main], ids=["bench", "cpu_probe"])
def test_a_setting_that_is_not_name_equals_value_is_refused_before_anything_starts(
    main: Callable[[list[str]], int], setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--against-env", setting])
    assert exited.value.code == 2
    assert f"{setting!r} is not NAME=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("main", [bench.main, cpu_probe.main], ids=["bench", "cpu_probe"])
def test_a_directory_without_the_server_is_refused(
    main: Callable[[list[str]], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--against", str(tmp_path)])
    assert exited.value.code == 2
    assert f"{tmp_path} has no server/shopkeep_server" in capsys.readouterr().err
