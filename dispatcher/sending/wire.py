"""The bytes of one SMPP link: PDUs framed out of a buffered socket and written in bursts.

smpplib binds, unbinds and parses the rare PDUs; the ones that come at volume (submit_sm_resp
and receipts) are read on the fast path of `fastpdu`, which reads exactly what smpplib would.
This module owns the socket's bytes, so that a command smpplib does not know (a vendor PDU) is
recognised and answered with generic_nack instead of raising, and so that a burst of PDUs
goes out in one `sendall`.
"""

import socket
import struct
from dataclasses import dataclass
from typing import Any

import smpplib.client
import smpplib.command_codes
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from dispatcher.sending import fastpdu

ESME_RINVCMDID = 0x03
_KNOWN_COMMANDS = frozenset(smpplib.command_codes.commands.values())
_RESPONSE_BIT = 0x80000000


class LinkError(Exception):
    """The link is broken or cannot be trusted any more: drop it and bind again."""


@dataclass(frozen=True, slots=True)
class UnknownPdu:
    """A PDU whose command id smpplib does not know, kept for its sequence number."""

    command_id: int
    sequence: int


_REPLIES = {
    "deliver_sm_resp": fastpdu.DELIVER_SM_RESP,
    "enquire_link_resp": fastpdu.ENQUIRE_LINK_RESP,
    "generic_nack": fastpdu.GENERIC_NACK,
    "unbind_resp": fastpdu.UNBIND_RESP,
}


class Link:
    """One connected, bound smpplib client: reads what is there, writes bursts."""

    def __init__(self, client: smpplib.client.Client) -> None:
        self.client = client
        self.socket: socket.socket = client._socket
        self._buffer = bytearray()
        self._broken: str | None = None  # the stream went wrong after what was last read

    def make(self, command: str, **fields: Any) -> Any:
        """A new PDU with the next sequence number of this client."""
        return smpplib.smpp.make_pdu(command, client=self.client, **fields)

    def next_sequence(self) -> int:
        """The next sequence number of this client, for a PDU encoded on the fast path."""
        sequence: int = self.client.next_sequence()
        return sequence

    def write(self, pdus: list[Any]) -> None:
        """Write smpplib PDUs with one system call."""
        self.write_bytes([pdu.generate() for pdu in pdus])

    def write_bytes(self, pdus: list[bytes]) -> None:
        """Write encoded PDUs with one system call."""
        try:
            self.socket.sendall(b"".join(pdus))
        except OSError as error:
            raise LinkError(f"write failed: {error}") from error

    def reply(self, sequence: int, command: str, status: int = 0) -> None:
        """Answer a PDU of the SMSC's with `command` under its sequence number."""
        self.write_bytes([fastpdu.encode_response(_REPLIES[command], sequence, status)])

    def read_available(self) -> list[Any]:
        """Every whole PDU that has arrived: submit_sm_resp and deliver_sm read on the fast
        path (fastpdu's tuples), the others parsed by smpplib; UnknownPdu for commands nobody
        knows."""
        if self._broken is not None:
            raise LinkError(self._broken)
        try:
            data = self.socket.recv(256 * 1024)
        except (BlockingIOError, TimeoutError):
            return []
        except OSError as error:
            raise LinkError(f"read failed: {error}") from error
        if not data:
            raise LinkError("the SMSC closed the connection")
        self._buffer += data
        try:
            read = fastpdu.read_pdus(self._buffer)
        except fastpdu.BadLength as error:
            # What came before the bad header is handled; the link goes on the next read.
            self._broken = f"bad command_length {error.length}"
            read = error.decoded
        return [
            self._parse(pdu.raw, pdu.command_id, pdu.sequence)
            if isinstance(pdu, fastpdu.RawPdu)
            else pdu
            for pdu in read
        ]

    def _parse(self, raw: bytes, command_id: int, sequence: int) -> Any:
        if command_id not in _KNOWN_COMMANDS:
            return UnknownPdu(command_id, sequence)
        try:
            return smpplib.smpp.parse_pdu(raw, client=self.client, allow_unknown_opt_params=True)
        except (
            smpplib.exceptions.PDUError,
            ValueError,
            IndexError,
            KeyError,  # a TLV smpplib knows for other commands only
            struct.error,
        ) as error:
            if command_id & _RESPONSE_BIT:
                raise LinkError(f"unreadable response 0x{command_id:08X}: {error}") from error
            return UnknownPdu(command_id, sequence)


def open_link(
    *, host: str, port: int, system_id: str, password: str, system_type: str, name: str
) -> Link:
    """Connect with TCP_NODELAY and bind as a transceiver; PDUError carries a refusal's status."""
    client = smpplib.client.Client(
        host,
        port,
        timeout=10,
        allow_unknown_opt_params=True,
        logger_name=f"dispatcher.smpp.{name}.wire",
    )
    try:
        client.connect()
        client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.bind_transceiver(system_id=system_id, password=password, system_type=system_type)
    except BaseException:
        if client._socket is not None:  # smpplib leaves it open when connect() fails
            client._socket.close()
            client._socket = None
        raise
    client._socket.settimeout(10)  # reads follow select(); a write may wait this long
    return Link(client)


def close_link(link: Link | None) -> None:
    """Close the socket, whatever state it is in."""
    if link is None:
        return
    try:
        link.client.disconnect()
    except OSError:
        pass
