"""Encryption at rest for secrets (connection credentials, API-key secrets, OAuth client secrets).

MultiFernet over PLATFORM_ENCRYPTION_KEYS: the first key encrypts, every key decrypts, so keys rotate by
prepending a new one and re-encrypting (`manage.py rotate_encryption_keys`).
"""

import json
from functools import cache, lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """Ciphertext that none of the configured keys opens. Never carries the ciphertext or plaintext."""


@cache
def _fernet(keys):
    return MultiFernet([Fernet(key.strip().encode()) for key in keys])


def fernet():
    return _fernet(tuple(settings.PLATFORM_ENCRYPTION_KEYS))


def encrypt_text(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt_text(ciphertext: str) -> str:
    return _decrypted(tuple(settings.PLATFORM_ENCRYPTION_KEYS), ciphertext)


# A warm passthrough call decrypts the same credentials every time: one Fernet decryption (HMAC + AES) per ciphertext
# and key set, then from memory.
@lru_cache(maxsize=1024)
def _decrypted(keys: tuple, ciphertext: str) -> str:
    try:
        return _fernet(keys).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("Stored secret cannot be decrypted with the configured PLATFORM_ENCRYPTION_KEYS.") from None


def encrypt_json(value) -> str:
    return encrypt_text(json.dumps(value, separators=(",", ":")))


def decrypt_json(ciphertext: str):
    return json.loads(decrypt_text(ciphertext)) if ciphertext else {}


def rotate(ciphertext: str) -> str:
    return fernet().rotate(ciphertext.encode()).decode() if ciphertext else ciphertext
