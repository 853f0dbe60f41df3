"""The `smsc-sim` command: run the SMSC simulator until SIGINT or SIGTERM.

SIGUSR1 drops every ESME connection at once (the simulator keeps listening); SIGUSR2 stalls
the simulator, or resumes it when stalled.
"""

import asyncio
import dataclasses
import logging
import signal
from pathlib import Path
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


def parse_errors(values: list[str]) -> dict[int, float]:
    """Injected error fractions from `STATUS=FRACTION` items (STATUS as 0x08 or 8)."""
    errors: dict[int, float] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        status_text, equals, fraction = item.partition("=")
        status_text = status_text.strip().lower()
        try:
            status = int(status_text, 16 if status_text.startswith("0x") else 10)
            errors[status] = float(fraction)
        except ValueError as error:
            raise typer.BadParameter(f"{item!r} is not STATUS=FRACTION (e.g. 0x08=0.1)") from error
        if not equals:
            raise typer.BadParameter(f"{item!r} is not STATUS=FRACTION (e.g. 0x08=0.1)")
    return errors


async def _serve(config: SimulatorConfig) -> Simulator:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    simulator = Simulator(config)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, simulator.drop_connections)
    loop.add_signal_handler(
        signal.SIGUSR2, lambda: simulator.resume() if simulator.stalled else simulator.stall()
    )
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
        typer.Option(
            help="Submits/s per system_id (all its sessions together) above which submit_sm "
            "gets ESME_RTHROTTLED."
        ),
    ] = None,
    burst: Annotated[
        float | None,
        typer.Option(help="Submits allowed at once above --max-rate. Default: max(1, rate/10)."),
    ] = None,
    max_sessions: Annotated[
        int | None,
        typer.Option(help="Live binds per system_id; more get ESME_RBINDFAIL. Default: any."),
    ] = None,
    latency: Annotated[float, typer.Option(help="Seconds added before each submit_sm_resp.")] = 0.0,
    answer_unbind: Annotated[
        bool,
        typer.Option(
            "--answer-unbind/--ignore-unbind", help="Answer unbind, or mimic SMSCs that do not."
        ),
    ] = True,
    seed: Annotated[
        int | None, typer.Option(help="Random seed for a reproducible outcome and fault mix.")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Append every accepted submit_sm to this file as "
            "destination<TAB>message id<TAB>ref/total/seq or -."
        ),
    ] = None,
    stats_file: Annotated[
        Path | None,
        typer.Option(help="Keep the statistics in this JSON file, rewritten every 0.5 s."),
    ] = None,
    error: Annotated[
        list[str] | None,
        typer.Option(
            help="Answer this fraction of submit_sm with this command_status, as "
            "STATUS=FRACTION (0x08=0.1); repeat or comma-separate."
        ),
    ] = None,
    no_answer: Annotated[float, typer.Option(help="Fraction of submit_sm never answered.")] = 0.0,
    ignore_enquire_link: Annotated[
        bool, typer.Option("--ignore-enquire-link", help="Never answer enquire_link.")
    ] = False,
    vendor_pdu_every: Annotated[
        int,
        typer.Option(
            help="After every N accepted submits on a session, send a vendor PDU "
            "(0x00010200) the ESME should answer with generic_nack. 0: never."
        ),
    ] = 0,
    stall: Annotated[
        bool, typer.Option("--stall", help="Start stalled (SIGUSR2 resumes).")
    ] = False,
    submit_ids: Annotated[
        str,
        typer.Option(
            help="How submit_sm_resp writes message ids: dec, dec0 (20 digits), hex, HEX, "
            "hex0 or HEX0 (16 digits)."
        ),
    ] = "dec",
    receipt_ids: Annotated[
        str | None,
        typer.Option(help="How receipts write message ids (same styles). Default: --submit-ids."),
    ] = None,
    receipt_tlvs: Annotated[
        bool,
        typer.Option(
            "--receipt-tlvs/--no-receipt-tlvs",
            help="Receipts carry receipted_message_id and message_state, or only the text.",
        ),
    ] = True,
    late_receipts: Annotated[
        float, typer.Option(help="Fraction of receipts sent --late-delay seconds late.")
    ] = 0.0,
    late_delay: Annotated[
        float, typer.Option(help="Seconds a late receipt waits beyond --receipt-delay.")
    ] = 0.0,
    repeat_receipts: Annotated[
        float, typer.Option(help="Fraction of receipts sent twice, 0.2 s apart.")
    ] = 0.0,
    receipt_per_message: Annotated[
        str | None,
        typer.Option(
            help="first or last: one receipt per concatenated message, once all its segments "
            "arrived, with the id of its first or last segment. Default: one per submit_sm."
        ),
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
            burst=burst,
            max_sessions=max_sessions,
            latency=latency,
            answer_unbind=answer_unbind,
            seed=seed,
            record=record,
            stats_file=stats_file,
            errors=parse_errors(error) if error else {},
            no_answer=no_answer,
            ignore_enquire_link=ignore_enquire_link,
            vendor_pdu_every=vendor_pdu_every,
            stalled=stall,
            submit_ids=submit_ids,
            receipt_ids=receipt_ids,
            receipt_tlvs=receipt_tlvs,
            late_receipts=late_receipts,
            late_delay=late_delay,
            repeat_receipts=repeat_receipts,
            receipt_per_message=receipt_per_message,
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
