"""The App Store: StoreKit 2 signed transactions and App Store Server Notifications v2,
verified offline with Apple's ``app-store-server-library`` (its ``SignedDataVerifier``): the
certificate chain up to the game's configured roots (at the time the App Store signed it),
Apple's certificate markers, the ES256 signature, the bundle id and the environment. Online
OCSP checks are off: the server may have no route to Apple, and a chain valid when signed
stays valid."""

from __future__ import annotations

import dataclasses
from typing import Any

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto

from ..errors import ReceiptInvalid, StoreError
from .store_accounts import StoreAccount

_ENVIRONMENTS = {"sandbox": Environment.SANDBOX, "production": Environment.PRODUCTION}

# The library's verdicts as the reasons a refused receipt gives (details.reason).
_REASONS = {
    VerificationStatus.INVALID_APP_IDENTIFIER: "bundle_id",
    VerificationStatus.INVALID_ENVIRONMENT: "environment",
    VerificationStatus.INVALID_CERTIFICATE: "certificate_chain",
    VerificationStatus.INVALID_CHAIN_LENGTH: "certificate_chain",
    VerificationStatus.INVALID_CHAIN: "certificate_chain",
}


@dataclasses.dataclass(frozen=True, slots=True)
class AppStoreTransaction:
    transaction_id: str
    product_id: str


def _verifier(account: StoreAccount) -> SignedDataVerifier:
    roots = [
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
        for pem in account.settings["root_certificates"]
    ]
    return SignedDataVerifier(
        root_certificates=roots,
        enable_online_checks=False,
        environment=_ENVIRONMENTS[account.settings["environment"]],
        bundle_id=account.settings["bundle_id"],
        app_apple_id=account.settings.get("app_apple_id"),
    )


def _refused(error: VerificationException) -> StoreError:
    reason = _REASONS.get(error.status)
    if reason is None:
        # VERIFICATION_FAILURE covers a chain that does not verify (expired, another root) and
        # a signature that does not: OpenSSL's chain error tells them apart.
        cause = error.__cause__
        reason = (
            "certificate_chain" if isinstance(cause, crypto.X509StoreContextError) else "signature"
        )
    message = {
        "bundle_id": "the transaction is for another app",
        "environment": "the transaction is from another App Store environment",
        "certificate_chain": "the transaction's certificates do not lead to a trusted root",
        "signature": "the transaction's signature does not verify",
    }[reason]
    return ReceiptInvalid(message, details={"reason": reason})


def _checked(payload: JWSTransactionDecodedPayload) -> AppStoreTransaction:
    if payload.revocationDate is not None:
        raise ReceiptInvalid(
            "Apple revoked this transaction (refunded or taken back)",
            details={"reason": "revoked"},
        )
    if payload.transactionId is None or payload.productId is None:
        raise ReceiptInvalid("the transaction names no product", details={"reason": "malformed"})
    return AppStoreTransaction(payload.transactionId, payload.productId)


def verify_transaction(account: StoreAccount, signed_transaction: str) -> AppStoreTransaction:
    """The transaction a StoreKit 2 JWS proves, or receipt_invalid with the reason."""
    try:
        payload = _verifier(account).verify_and_decode_signed_transaction(signed_transaction)
    except VerificationException as error:
        raise _refused(error) from error
    return _checked(payload)


# Notification types that take a purchase back: a refund, and Family Sharing access revoked.
TAKE_BACK = {NotificationTypeV2.REFUND: "refund", NotificationTypeV2.REVOKE: "revoke"}


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    notification_type: str
    transaction_id: str | None
    take_back: str | None  # the reason to claw back, when the notification takes back


def verify_notification(account: StoreAccount, signed_payload: str) -> Notification:
    """An App Store Server Notification v2, verified like a transaction (its own signature,
    and the signed transaction inside it)."""
    verifier = _verifier(account)
    try:
        decoded = verifier.verify_and_decode_notification(signed_payload)
        signed_transaction = decoded.data.signedTransactionInfo if decoded.data else None
        transaction: Any = (
            verifier.verify_and_decode_signed_transaction(signed_transaction)
            if signed_transaction
            else None
        )
    except VerificationException as error:
        raise _refused(error) from error
    kind = decoded.notificationType
    return Notification(
        notification_type=str(kind.value if kind is not None else decoded.rawNotificationType),
        transaction_id=transaction.transactionId if transaction is not None else None,
        take_back=TAKE_BACK.get(kind) if kind is not None else None,
    )
