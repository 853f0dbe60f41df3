"""`dispatcher keygen` and `dispatcher sign`: an authority's Ed25519 key, kept on its side.

The private key never reaches the dispatcher: the authority registers the public key (base64 of
the 32 raw bytes) and its approvers sign each approval offline. A signature is Ed25519 over
`campaigns.approval.signed_message(campaign_id, content_hash, approver)`, written in base64:
it names the approver, so it counts once, for that approver only.
Only the key, the signature or the public key go to stdout, so they can be captured by a script.
"""

import base64
import os
import re
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from campaigns import approval

CONTENT_HASH: Final = re.compile(r"[0-9a-f]{64}")


def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM)")],
) -> None:
    """Write a new Ed25519 private key (mode 0600) and print the public key to register."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # O_EXCL: never overwrite a key that may already be registered.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        _fail(f"cannot create {out}: {error.strerror}")
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(pem)
    typer.echo(f"private key written to {out}; keep it with the authority", err=True)
    typer.echo("public key to register (authorities create/update --public-key-file):", err=True)
    typer.echo(public_key_text(key.public_key()))


def sign(
    key: Annotated[Path, typer.Option("--key", help="The authority's private key file (PEM)")],
    campaign: Annotated[int, typer.Option("--campaign", min=1, help="Campaign id")],
    content_hash: Annotated[
        str, typer.Option("--hash", help="The campaign's content_hash, as the API shows it")
    ],
    approver: Annotated[
        str, typer.Option("--approver", help="Username of the approver this signature is for")
    ],
) -> None:
    """Print the base64 signature for APPROVER approving campaign ID at its content hash."""
    if not CONTENT_HASH.fullmatch(content_hash):
        _fail("--hash: expected the campaign's content_hash, 64 lowercase hex digits")
    private_key = _load_private_key(key)
    signature = private_key.sign(approval.signed_message(campaign, content_hash, approver))
    typer.echo(base64.b64encode(signature).decode())


def public_key_text(key: Ed25519PublicKey) -> str:
    """The form an authority's public key is registered in: base64 of its 32 raw bytes."""
    return base64.b64encode(key.public_bytes_raw()).decode()


def read_public_key(path: Path) -> str:
    """A public key file's text: base64 raw as `keygen` prints it, or converted from PEM."""
    text = _read(path).strip()
    if not text.startswith("-----BEGIN"):
        return text  # the domain says whether it is a key
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError:
        _fail(f"{path} is not a PEM public key")
    if not isinstance(key, Ed25519PublicKey):
        _fail(f"{path} holds a public key, but not an Ed25519 one")
    return public_key_text(key)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path).encode(), password=None)
    except TypeError:
        _fail(f"{path} is encrypted; give an unencrypted PEM key")
    except ValueError:
        _fail(f"{path} is not a PEM private key")
    if not isinstance(key, Ed25519PrivateKey):
        _fail(f"{path} holds a private key, but not an Ed25519 one")
    return key


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        _fail(f"cannot read {path}: {error}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
