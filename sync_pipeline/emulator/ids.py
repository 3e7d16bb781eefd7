"""Clerk-shaped object ids that encode where an object lives in the emulator's data.

Clerk ids are a prefix (``user_``, ``org_``, ``orgmem_``, ``idn_``, ``ins_``) and 27
base62 characters (a KSUID: creation second first, then random bytes). The emulator's
27 characters are, in order: 6 for the creation second (so ids sort roughly by creation
time, like Clerk's), 10 for a tag derived from the seed and the id's family, and 11 for
the object's index scrambled by an invertible 64-bit mix (so ids look random). That
lets :meth:`IdCodec.decode` turn an id back into its index in O(1): a million generated
users need no id -> row dictionary.

:meth:`IdCodec.encode` (one id, plain ints) and :meth:`IdCodec.encode_many` (numpy, for
a page at a time) give the same text; the tests hold them to it.
"""

from __future__ import annotations

import hashlib

import numpy as np

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_BYTES = np.frombuffer(BASE62_ALPHABET.encode(), dtype=np.uint8)
_BASE62_VALUE = {char: value for value, char in enumerate(BASE62_ALPHABET)}
ID_BODY_LENGTH = 27
_TIME_WIDTH, _TAG_WIDTH, _INDEX_WIDTH = 6, 10, 11  # 62**11 > 2**64, 62**6 seconds > 1,700 years
ID_EPOCH_SECONDS = 1_400_000_000  # the KSUID epoch

_MASK64 = (1 << 64) - 1
# An odd multiplier is invertible modulo 2**64, which makes the index mix reversible.
_MIX_MULTIPLIER = 0x9E3779B97F4A7C15
_MIX_MULTIPLIER_INVERSE = pow(_MIX_MULTIPLIER, -1, 1 << 64)
_PLACE_VALUES = np.array([62**power for power in range(_INDEX_WIDTH - 1, -1, -1)], dtype=np.uint64)


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(BASE62_ALPHABET[digit])
    return "".join(reversed(digits))


def _base62_digits_into(values: np.ndarray, out: np.ndarray) -> None:
    """Write ``values`` (uint64) as base62 digits (ASCII codes) into the columns of ``out``.

    One broadcast division by every place value at once, instead of a loop of divisions.
    """
    digits = values[:, None] // _PLACE_VALUES[-out.shape[1] :][None, :]
    digits[:, 1:] %= np.uint64(62)  # the leading digit is already below 62 (62**11 > 2**64)
    out[:] = _ALPHABET_BYTES[digits]


class IdCodec:
    """Makes and reads the ids of one family of objects (say, users) for one seed."""

    def __init__(self, prefix: str, seed: int, *, family: str = "") -> None:
        """``family`` tells apart ids sharing a prefix (e-mail and phone ids are both ``idn_``)."""
        self.prefix = prefix
        digest = hashlib.blake2b(f"{seed}:{prefix}:{family}".encode(), digest_size=16).digest()
        self._tag = _base62(int.from_bytes(digest[:8], "big") % 62**_TAG_WIDTH, _TAG_WIDTH)
        self._mix_key = int.from_bytes(digest[8:], "big")

    def encode(self, index: int, created_at_ms: int) -> str:
        mixed = ((index * _MIX_MULTIPLIER) & _MASK64) ^ self._mix_key
        return "".join(
            (self.prefix, _base62(self._seconds(created_at_ms), _TIME_WIDTH), self._tag, _base62(mixed, _INDEX_WIDTH))
        )

    def encode_many(
        self, indices: np.ndarray, created_at_ms: np.ndarray, where: np.ndarray | None = None
    ) -> list[str | None]:
        """``encode`` over arrays of indices and creation times, vectorised.

        With ``where`` (a boolean mask), only those ids are made and the others are None:
        most users have no phone, so there is no point spelling out a phone id for each.
        """
        if where is not None:
            if not where.any():
                return [None] * len(where)
            wanted = iter(self.encode_many(np.asarray(indices)[where], np.asarray(created_at_ms)[where]))
            return [next(wanted) if keep else None for keep in where.tolist()]
        if len(indices) == 1:  # one id (a single GET): plain ints beat numpy's per-call cost
            return [self.encode(int(indices[0]), int(created_at_ms[0]))]
        # One row of ASCII codes per id: prefix, time, tag, index; then read as strings.
        start = len(self.prefix)
        text = np.empty((len(indices), start + ID_BODY_LENGTH), dtype=np.uint8)
        text[:, : start + _TIME_WIDTH + _TAG_WIDTH] = np.frombuffer(
            (self.prefix + "0" * _TIME_WIDTH + self._tag).encode(), dtype=np.uint8
        )
        seconds = np.maximum(np.asarray(created_at_ms, dtype=np.int64) // 1000 - ID_EPOCH_SECONDS, 0)
        _base62_digits_into(seconds.astype(np.uint64), text[:, start : start + _TIME_WIDTH])
        mixed = (np.asarray(indices, dtype=np.uint64) * np.uint64(_MIX_MULTIPLIER)) ^ np.uint64(self._mix_key)
        _base62_digits_into(mixed, text[:, start + _TIME_WIDTH + _TAG_WIDTH :])
        return [raw.decode() for raw in text.view(f"S{text.shape[1]}").ravel().tolist()]

    def order_keys(self, indices: np.ndarray) -> np.ndarray:
        """Numbers that sort like the ids of ``indices`` among ids of one creation second.

        Ids of one family and second differ only in their last 11 characters, the mixed
        index in base62 (whose alphabet is in ASCII order): sorting by the mixed index is
        sorting by id, without spelling a million ids out.
        """
        return (np.asarray(indices, dtype=np.uint64) * np.uint64(_MIX_MULTIPLIER)) ^ np.uint64(self._mix_key)

    def decode(self, object_id: str) -> int | None:
        """The index an id of this family was made from, or None if it is not one of ours.

        Callers must still check the index is in range and that ``encode`` gives the same
        id back (the time part is not checked here).
        """
        body = object_id[len(self.prefix) :]
        if not object_id.startswith(self.prefix) or len(body) != ID_BODY_LENGTH:
            return None
        if body[_TIME_WIDTH : _TIME_WIDTH + _TAG_WIDTH] != self._tag:
            return None
        mixed = 0
        for char in body[_TIME_WIDTH + _TAG_WIDTH :]:
            digit = _BASE62_VALUE.get(char)
            if digit is None:
                return None
            mixed = mixed * 62 + digit
        if mixed > _MASK64:
            return None
        return ((mixed ^ self._mix_key) * _MIX_MULTIPLIER_INVERSE) & _MASK64

    @staticmethod
    def _seconds(created_at_ms: int) -> int:
        return max(created_at_ms // 1000 - ID_EPOCH_SECONDS, 0)
