"""PostgreSQL URLs: recognising them and showing them without the password."""

from __future__ import annotations

import re
from urllib.parse import unquote

SCHEMES = ("postgresql://", "postgres://")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:ssl)?password=)([^&#]*)")
#: libpq's keyword form (``host=db user=me password=...``), which is not a URL but may be passed as one.
_KEYWORD_PASSWORD = re.compile(r"(?i)((?:^|\s)(?:ssl)?password\s*=\s*)('(?:\\.|[^'])*(?:'|$)|\S*)")
MASK = "***"


def is_postgres_url(value) -> bool:
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme, userinfo or '', host part up to the query, query and fragment)."""
    scheme_end = url.index("://") + 3
    scheme, rest = url[:scheme_end], url[scheme_end:]
    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    before, query = rest[:query_at], rest[query_at:]
    # The userinfo ends at the LAST '@' before the query: a password may hold '/' or ':'.
    userinfo, at, host = before.rpartition("@")
    return scheme, userinfo if at else "", host if at else before, query


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in the userinfo, in ``?password=``, and in libpq's
    keyword form ``password=...`` when it is no URL)."""
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", url))
    scheme, userinfo, host, query = _split(url)
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    query = _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", query)
    return f"{scheme}{userinfo + '@' if userinfo else ''}{host}{query}"


def secrets_of(url: str) -> list[str]:
    """The passwords written in ``url`` (raw and percent-decoded), to scrub from any message."""
    found = []
    if "://" in url:
        _scheme, userinfo, _host, query = _split(url)
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    else:
        query = url
        found += [m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(url)]
    found += [m.group(2) for m in _QUERY_PASSWORD.finditer(query)]
    out = []
    for secret in found:
        out += [secret, unquote(secret)]
    return sorted({s for s in out if s}, key=len, reverse=True)


def scrub(text: str, secrets) -> str:
    """``text`` with every secret replaced by ``***`` (libpq may echo parts of a malformed URL)."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
