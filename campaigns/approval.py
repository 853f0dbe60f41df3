"""What an approval binds to: the campaign's content hash, and an optional Ed25519 signature.

The content hash is SHA-256 (hex) over the UTF-8 bytes of this JSON object, serialised with
sorted keys, no whitespace (`separators=(",", ":")`) and non-ASCII characters kept as they are:

    {"document": {"date": "2020-02-02" | null, "issuer": NFC text, "number": text},
     "mode": "live" | "exercise", "priority": "normal" | "urgent",
     "recipient_list_id": int | null, "sender": text,
     "send_expiry": ISO 8601 UTC "2020-02-02T08:00:00+00:00" | null, "send_start": same,
     "target_areas": sorted list of codes, "text": NFC text, "unaccented": bool, "v": 1}

Everything that decides what is sent to whom is in it, so any edit changes the hash and voids
the approvals given to the old one. A signature is Ed25519 over
`signed_message(id, hash, approver)`, which names the campaign and the approver's username: it
cannot be replayed onto another campaign, and it counts once, for that approver only.
"""

import base64
import binascii
import hashlib
import json
import unicodedata
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from campaigns.models import CampaignBase

SIGNATURE_DOMAIN = "gialai-dispatcher approval v2"


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def canonical_content(campaign: CampaignBase) -> bytes:
    """The canonical bytes the content hash is taken over."""
    nfc = unicodedata.normalize
    document = {
        "number": campaign.document_number,
        "date": campaign.document_date.isoformat() if campaign.document_date else None,
        "issuer": nfc("NFC", campaign.document_issuer),
    }
    content = {
        "v": 1,
        "text": nfc("NFC", campaign.text),
        "sender": campaign.sender,
        "target_areas": sorted(campaign.target_areas),
        "recipient_list_id": campaign.recipient_list_id,
        "send_start": _instant(campaign.send_start),
        "send_expiry": _instant(campaign.send_expiry),
        "mode": str(campaign.mode),
        "priority": str(campaign.priority),
        "unaccented": campaign.unaccented,
        "document": document,
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def content_hash(campaign: CampaignBase) -> str:
    """SHA-256 (hex) of the campaign's canonical content."""
    return hashlib.sha256(canonical_content(campaign)).hexdigest()


def signed_message(campaign_id: int, digest: str, approver: str) -> bytes:
    """The bytes an authority's key signs for `approver` to approve `campaign_id` at `digest`."""
    name = unicodedata.normalize("NFC", approver)
    return f"{SIGNATURE_DOMAIN}\ncampaign:{campaign_id}\ncontent:{digest}\napprover:{name}".encode()


def parse_public_key(encoded: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its base64 raw form (32 bytes); ValueError if it is not one."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not a base64 Ed25519 public key (32 raw bytes)") from error


def signature_is_valid(
    *, public_key: str, campaign_id: int, digest: str, approver: str, signature: str | None
) -> bool:
    """Whether `signature` (base64) is the authority key's signature of this approval."""
    if not signature:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        parse_public_key(public_key).verify(raw, signed_message(campaign_id, digest, approver))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
