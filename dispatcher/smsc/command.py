"""The `smsc-sim` command: run the SMSC simulator until SIGINT or SIGTERM."""

import asyncio
import dataclasses
import logging
import signal
from typing import Annotated

import typer

from dispatcher.smsc.simulator import OUTCOMES, Simulator, SimulatorConfig


def parse_outcomes(values: list[str]) -> dict[str, float]:
    """Outcome weights from `STAT=WEIGHT` items, each may be comma-separated."""
    weights: dict[str, float] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        stat, _, weight = item.partition("=")
        stat = stat.strip().upper()
        if stat not in OUTCOMES:
            raise typer.BadParameter(f"{stat!r} is not one of {', '.join(OUTCOMES)}")
        try:
            weights[stat] = float(weight) if weight else 1.0
        except ValueError as error:
            raise typer.BadParameter(f"weight of {stat} is not a number: {weight!r}") from error
    return weights


async def _serve(config: SimulatorConfig) -> Simulator:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    simulator = Simulator(config)
    async with simulator:
        print(f"SMSC simulator listening on {config.host}:{simulator.port}", flush=True)
        await stop.wait()
    return simulator


def smsc_sim(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 2775,
    system_id: Annotated[
        str | None, typer.Option(help="Accept only this system_id (default: any).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Accept only this password (default: any).")
    ] = None,
    receipt_delay: Annotated[
        float, typer.Option(help="Seconds between a submit_sm_resp and its receipt.")
    ] = 0.0,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            help="Receipt outcome weight as STAT=WEIGHT (DELIVRD, UNDELIV, EXPIRED, REJECTD); "
            "repeat or comma-separate. Default: all DELIVRD."
        ),
    ] = None,
    max_rate: Annotated[
        float | None,
        typer.Option(help="Submits/s per bind above which submit_sm gets ESME_RTHROTTLED."),
    ] = None,
    latency: Annotated[float, typer.Option(help="Seconds added before each submit_sm_resp.")] = 0.0,
    answer_unbind: Annotated[
        bool,
        typer.Option(
            "--answer-unbind/--ignore-unbind", help="Answer unbind, or mimic SMSCs that do not."
        ),
    ] = True,
    seed: Annotated[
        int | None, typer.Option(help="Random seed for a reproducible outcome mix.")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Logging level (DEBUG, INFO, WARNING, ...).")
    ] = "WARNING",
) -> None:
    """Run an SMPP 3.4 SMSC simulator until interrupted, then print its statistics."""
    try:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        config = SimulatorConfig(
            host=host,
            port=port,
            system_id=system_id,
            password=password,
            receipt_delay=receipt_delay,
            outcomes=parse_outcomes(outcome) if outcome else {"DELIVRD": 1.0},
            max_rate=max_rate,
            latency=latency,
            answer_unbind=answer_unbind,
            seed=seed,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    try:
        simulator = asyncio.run(_serve(config))
    except OSError as error:
        typer.echo(f"Cannot listen on {host}:{port}: {error}", err=True)
        raise typer.Exit(1) from error
    stats = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(simulator.stats).items())
    print(f"SMSC simulator stopped: {stats}", flush=True)
