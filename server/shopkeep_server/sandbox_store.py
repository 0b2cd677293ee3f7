"""A local stand-in for the App Store's signing, for the demo's TEST store and the tests.

It makes its own certificate chain (a root, an intermediate and a leaf, with the markers
Apple's library looks for: OID 1.2.840.113635.100.6.2.1 on the intermediate, 1.2.840.113635.
100.6.11.1 on the leaf) and signs StoreKit 2 transactions and App Store Server Notifications v2
exactly as the App Store does: ES256 JWS whose ``x5c`` header carries leaf, intermediate and
root. A game whose App Store settings trust this root (and only such a game) accepts what it
signs, as an App Store sandbox account would; nothing here is ever trusted in production.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time
import uuid
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

APPLE_INTERMEDIATE_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
APPLE_LEAF_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shopkeep test store"),
        ]
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
    marker: x509.ObjectIdentifier | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if marker is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(marker, b"\x05\x00"), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _der64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@dataclasses.dataclass
class SandboxAppStore:
    """A certificate chain and the JWS the App Store would sign with it."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls,
        *,
        leaf_valid_from: dt.datetime | None = None,
        leaf_valid_until: dt.datetime | None = None,
    ) -> SandboxAppStore:
        """A new chain; the leaf's validity can be set to test an expired certificate."""
        now = dt.datetime.now(dt.UTC)
        long_ago, far_ahead = now - dt.timedelta(days=3650), now + dt.timedelta(days=3650)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _certificate(
            "Shopkeep Test Root CA",
            root_key,
            issuer=None,
            ca=True,
            marker=None,
            not_before=long_ago,
            not_after=far_ahead,
        )
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _certificate(
            "Shopkeep Test Worldwide Developer Relations",
            intermediate_key,
            issuer=(root, root_key),
            ca=True,
            marker=APPLE_INTERMEDIATE_MARKER,
            not_before=long_ago,
            not_after=far_ahead,
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(
            "Shopkeep Test StoreKit Signing",
            leaf_key,
            issuer=(intermediate, intermediate_key),
            ca=False,
            marker=APPLE_LEAF_MARKER,
            not_before=leaf_valid_from or long_ago,
            not_after=leaf_valid_until or far_ahead,
        )
        return cls(root, intermediate, leaf, leaf_key)

    def to_pem(self) -> str:
        """The chain and the leaf's private key as one PEM text (:meth:`from_pem` reads it):
        a test store that keeps its root across runs keeps what it signed verifiable."""
        certificates = b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in (self.root, self.intermediate, self.leaf)
        )
        key = self.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (certificates + key).decode()

    @classmethod
    def from_pem(cls, text: str) -> SandboxAppStore:
        root, intermediate, leaf = x509.load_pem_x509_certificates(text.encode())
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not a test store: its signing key is not an EC key")
        return cls(root, intermediate, leaf, key)

    def root_pem(self) -> str:
        """The root a game's App Store settings trust (``root_certificates``)."""
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, payload: dict[str, Any]) -> str:
        """``payload`` as the App Store signs it."""
        headers = {"x5c": [_der64(self.leaf), _der64(self.intermediate), _der64(self.root)]}
        return jwt.encode(payload, self.leaf_key, algorithm="ES256", headers=headers)

    def transaction(
        self,
        *,
        bundle_id: str,
        product_id: str,
        environment: str = "Sandbox",
        transaction_id: str | None = None,
        signed_at: dt.datetime | None = None,
        revoked: bool = False,
    ) -> str:
        """A StoreKit 2 signed transaction of a consumable (JWSTransaction)."""
        now_ms = int((signed_at or dt.datetime.now(dt.UTC)).timestamp() * 1000)
        transaction_id = transaction_id or str(uuid.uuid4().int % 10**15)
        payload: dict[str, Any] = {
            "transactionId": transaction_id,
            "originalTransactionId": transaction_id,
            "bundleId": bundle_id,
            "productId": product_id,
            "purchaseDate": now_ms,
            "originalPurchaseDate": now_ms,
            "quantity": 1,
            "type": "Consumable",
            "inAppOwnershipType": "PURCHASED",
            "signedDate": now_ms,
            "environment": environment,
            "transactionReason": "PURCHASE",
            "storefront": "USA",
            "storefrontId": "143441",
            "price": 4990,
            "currency": "USD",
        }
        if revoked:
            payload["revocationDate"] = now_ms
            payload["revocationReason"] = 0
        return self.sign(payload)

    def notification(
        self,
        notification_type: str,
        signed_transaction: str,
        *,
        bundle_id: str,
        environment: str = "Sandbox",
    ) -> str:
        """An App Store Server Notification v2 ``signedPayload`` about a transaction."""
        return self.sign(
            {
                "notificationType": notification_type,
                "notificationUUID": str(uuid.uuid4()),
                "version": "2.0",
                "signedDate": int(time.time() * 1000),
                "data": {
                    "bundleId": bundle_id,
                    "environment": environment,
                    "signedTransactionInfo": signed_transaction,
                },
            }
        )
