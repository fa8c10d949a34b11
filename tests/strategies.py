"""Hypothesis strategies shared by the test modules.

Each section belongs to the module it feeds; add a section of your own rather than editing
another's.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

# --- request signing (auth.py) ----------------------------------------------------------------

# Characters that stress q-sign's encoding: the reserved ASCII symbols the COS doc lists, spaces,
# "+" (a space to form decoders), "%" and non-ASCII text of several scripts.
_SIGN_SYMBOLS = " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}-_.~"
_SIGN_NON_ASCII = "腾讯云数据万象éüßøΩЖ🙂"

sign_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(_SIGN_SYMBOLS),
        st.sampled_from(_SIGN_NON_ASCII),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=12,
)

# A path segment survives requests' URL preparation unchanged once decoded: no "%", "?" or "#"
# (they would be read as escapes, the query or the fragment) and no "." / ".." (removed as dot
# segments).
_PATH_ALPHABET = st.one_of(
    st.sampled_from("-_.~()!$&'*+,;=:@ "),
    st.sampled_from(_SIGN_NON_ASCII),
    st.characters(codec="ascii", categories=("Lu", "Ll", "Nd")),
)
_path_segment = st.text(alphabet=_PATH_ALPHABET, min_size=1, max_size=10).filter(
    lambda s: s.strip(".") != "" and s.strip() == s
)
sign_paths = st.lists(_path_segment, max_size=3).map(lambda parts: "/" + "/".join(parts))

# Query parameters: names and values from sign_text (values may be empty). Names must differ
# once lower-cased, because q-sign lower-cases them and the SDK keeps them in a dict.
sign_params = st.dictionaries(sign_text.filter(bool), sign_text, max_size=6).filter(
    lambda d: len({k.lower() for k in d}) == len(d)
)

# Header values as requests lets them on the wire: printable ASCII, no leading blank.
_header_value = st.text(
    alphabet=st.characters(codec="ascii", min_codepoint=0x20, max_codepoint=0x7E), max_size=20
).filter(lambda v: not v.startswith(" "))
_header_name_tail = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8
)
_signed_header_name = st.one_of(
    st.builds(
        lambda p, t: p + t,
        st.sampled_from(["x-ci-", "x-cos-", "X-Cos-", "X-CI-"]),
        _header_name_tail,
    ),
    st.sampled_from(["Content-Type", "content-type"]),
)
_unsigned_header_name = st.sampled_from(["User-Agent", "Accept", "X-Request-Tag", "Date"])
sign_headers = st.dictionaries(
    st.one_of(_signed_header_name, _unsigned_header_name), _header_value, max_size=5
).filter(lambda d: len({k.lower() for k in d}) == len(d))

sign_hosts = st.from_regex(
    r"[a-z][a-z0-9-]{0,20}-125[0-9]{7}\.ci\.ap-[a-z]{4,9}\.myqcloud\.com", fullmatch=True
)

# Secrets as CosConfig accepts them: non-empty, no blank at either end.
_secret = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs")),
    min_size=1,
    max_size=40,
)


@dataclass(frozen=True)
class SignCase:
    """One request to sign: credentials, frozen time, URL parts and headers."""

    secret_id: str
    secret_key: str
    token: str | None
    now: int
    host: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    explicit_host: bool


sign_cases = st.builds(
    SignCase,
    secret_id=st.from_regex(r"AKID[A-Za-z0-9]{8,32}", fullmatch=True),
    secret_key=_secret,
    token=st.none() | st.from_regex(r"[A-Za-z0-9+/=_-]{1,60}", fullmatch=True),
    now=st.integers(min_value=1_000_000, max_value=4_000_000_000),
    host=sign_hosts,
    path=sign_paths,
    params=sign_params,
    headers=sign_headers,
    explicit_host=st.booleans(),
)
