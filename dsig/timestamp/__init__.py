"""Certified timestamps (RFC 3161) of DICOM signatures.

:mod:`dsig.timestamp.rfc3161` is the DICOM-free part (queries, replies, tokens and their
checks); :mod:`dsig.timestamp.dicom` is the DICOM glue (what is stamped, where the token is
stored, the verifier's timestamp phase). The names below are importable from here, as before
the split; the verifier's hooks that fill its private result drafts stay in
:mod:`dsig.timestamp.dicom`.
"""

from __future__ import annotations

from dsig.timestamp.dicom import (
    CMS_TSP,
    TIMESTAMP_FINDING_CODES,
    TimestampResult,
    certified_moment,
    insert_token,
    signature_bytes,
    signatures_to_stamp,
    timestamped_bytes,
    trust_at_timestamp,
    verify_item_timestamp,
)
from dsig.timestamp.rfc3161 import (
    QUERY_HASHES,
    TIMESTAMPING_OID,
    QueryOptions,
    TimestampError,
    TimestampQuery,
    TokenCheck,
    TokenInfo,
    build_query,
    check_reply,
    check_token,
    token_from_reply,
)

__all__ = [
    "CMS_TSP",
    "QUERY_HASHES",
    "TIMESTAMPING_OID",
    "TIMESTAMP_FINDING_CODES",
    "QueryOptions",
    "TimestampError",
    "TimestampQuery",
    "TimestampResult",
    "TokenCheck",
    "TokenInfo",
    "build_query",
    "certified_moment",
    "check_reply",
    "check_token",
    "insert_token",
    "signature_bytes",
    "signatures_to_stamp",
    "timestamped_bytes",
    "token_from_reply",
    "trust_at_timestamp",
    "verify_item_timestamp",
]
