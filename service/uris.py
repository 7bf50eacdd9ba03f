"""Credentials out of URIs before they are shown. `O2V_MILVUS_URI` and `O2V_SAGEMAKER_ENDPOINT_URL` may carry a
user and password (`http://user:pass@host`) or a token in their query, and the libraries that use them quote the URI
in their errors (botocore: `Could not connect to the endpoint URL: "http://user:pass@host/…"`), which the service
passes on in 503 answers, `/readyz`, its log and `o2v`'s messages. `masked` replaces the userinfo and the values of
credential-like query parameters with `***` wherever a URI appears in a text; ServiceError applies it to every
message. Imports nothing heavy.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s\"'<>]*@")
"""`scheme://userinfo@`: the userinfo runs to the last `@` before the path (a password may hold a raw `@`)."""
_SECRET_PARAMS = re.compile(
    r"(?P<name>[?&;][^=&#\s\"'<>]*(?:token|key|secret|pass|pwd|sig|auth|credential)[^=&#\s\"'<>]*=)[^&#\s\"'<>]*",
    re.IGNORECASE,
)
"""`?token=…`, `&api_key=…`, `&X-Amz-Signature=…`: a query parameter whose name says it holds a credential."""


def masked(text: str) -> str:
    """`text` with every URI's userinfo and credential-like query values replaced by `***`."""
    if "://" not in text and "=" not in text:
        return text
    return _SECRET_PARAMS.sub(rf"\g<name>{MASK}", _USERINFO.sub(rf"\g<scheme>{MASK}@", text))
