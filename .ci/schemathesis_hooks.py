"""Schemathesis hooks for .ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Idempotency-Key: generated keys shrink towards a few short values ("0", "00", ...), so
unrelated requests reuse keys. postd then does exactly what its contract says (a replay
answers the stored response, even for a post deleted since; another body with the same
key is a 422), which schemathesis reads as "valid data rejected" and "created resource
not found". A valid key gets a unique suffix, so every request is a first use; invalid
keys (negative tests, which must get 400) are sent unchanged. Replays are tested by
tests/it/core.rs and tests/it/hostile.rs.
"""

import uuid

import schemathesis

HEADER = "idempotency-key"


def _valid_key(value):
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 255
        and all(0x21 <= ord(ch) <= 0x7E for ch in value)
    )


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers
    if not headers:
        return None
    for name, value in list(headers.items()):
        if name.lower() == HEADER and _valid_key(value):
            headers[name] = f"{value[:200]}.{uuid.uuid4().hex}"
    return None
