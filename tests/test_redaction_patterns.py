"""What default redaction recognises in text and names, what it leaves alone, and that it
stays linear on hostile input, in whole texts and in streams split into chunks."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcel_trace.redact import REDACTED, Redactor, is_secret_key, scrub, scrub_text
from tests.strategies import benign_text, secrets_with_value

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "-----END RSA PRIVATE KEY-----"
)

# (text, the part that must disappear, a part that must stay)
DETECTED = [
    ("key sk-proj-abcdefghijklmnopqrstuvwx123456 end", "abcdefghijklmnop", "key "),
    ("key sk-ant-api03-abcdefghijklmnopqrstuv end", "abcdefghijklmnop", " end"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
    ("stripe rk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
    ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
    ("id AKIAIOSFODNN7EXAMPLE here", "IOSFODNN7EXAMPLE", " here"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI",
        "aws_secret_access_key",
    ),
    ('AWS_SECRET="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "wJalrXUtnFEMI", "AWS_SECRET"),
    ("maps AIzaSyA1234567890abcdefghijklmnopqrstuv ok", "SyA1234567890", "maps"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz", "gh "),
    ("slack xoxb-123456789012-abcdefghijkl", "abcdefghijkl", "slack"),
    (f"token {JWT} sent", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV", " sent"),
    (f"unsigned {JWT.rsplit('.', 1)[0]}.", "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6", "unsigned"),
    ("header Bearer abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnop", "header"),
    ("Authorization: Bearer abc123", "abc123", "Authorization: "),
    ('{"Authorization": "Bearer x1"}', "x1", '"Authorization": "'),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "Authorization: "),
    ("curl -H 'Basic dXNlcjpodW50ZXIy'", "dXNlcjpodW50ZXIy", "curl"),
    ("https://admin:hunter2@db.example.com/x", "hunter2", "https://admin:"),
    ("postgres://u:p@ss@db.example.com:5432/app", "p@ss", "@db.example.com:5432/app"),
    ("redis://:hunter2@cache.local", "hunter2", "redis://:"),
    ("login with password=hunter2 please", "hunter2", " please"),
    ("passwd: hunter2", "hunter2", "passwd: "),
    ("pwd=hunter2&user=ann", "hunter2", "&user=ann"),
    ("DB_PASSWORD=hunter2", "hunter2", "DB_PASSWORD="),
    ('{"api_key": "abc def", "n": 1}', "abc def", '"n": 1'),
    ("api_key=abc123&page=2", "abc123", "page=2"),
    (f"key:\n{PEM}\nafter", "MIIEowIBAAKCAQEA", "after"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE (truncated)", "b3BlbnNzaC1", ""),
]


@pytest.mark.parametrize(("text", "secret", "kept"), DETECTED)
def test_every_detected_format_is_redacted_and_its_context_kept(
    text: str, secret: str, kept: str
) -> None:
    cleaned = scrub_text(text)
    assert secret not in cleaned
    assert REDACTED in cleaned
    assert kept in cleaned


FALSE_POSITIVE_TEXTS = [
    "task-management-system-v2",
    "risk-assessment-framework-v2-final",
    "ask-the-user-before-deleting-files",
    "Basic authentication is disabled",
    "the bearer of bad news",
    "https://example.com:8080/path?page=2&sort=asc",
    "password_policy=strict",
    "max_tokens: 256",
    "see https://docs.example.com/auth/tokens",
]
FALSE_POSITIVE_KEYS = {
    "secretary": "Jane",
    "cookie_recipe": "butter, sugar",
    "password_policy": "min 12 characters",
    "next_token": "page-2",
    "max_tokens": 256,
    "total_tokens": 1024,
    "api_key_rotation_days": 90,
}


@pytest.mark.parametrize("text", FALSE_POSITIVE_TEXTS)
def test_false_positive_corpus_texts_are_unchanged(text: str) -> None:
    assert scrub_text(text) == text


def test_false_positive_corpus_keys_keep_their_values() -> None:
    assert scrub(FALSE_POSITIVE_KEYS) == FALSE_POSITIVE_KEYS
    for key in FALSE_POSITIVE_KEYS:
        assert not is_secret_key(key), key


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "dbPassword",
        "db_password",
        "passwd",
        "pwd",
        "secret",
        "clientSecret",
        "client-secret",
        "AWS_SECRET_ACCESS_KEY",
        "api_key",
        "apiKey",
        "x-api-key",
        "OPENAI_API_KEY",
        "private_key",
        "access_key",
        "token",
        "accessToken",
        "sessionToken",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "authorization",
        "Proxy-Authorization",
        "auth_header",
        "cookie",
        "Set-Cookie",
        "credentials",
        "passphrase",
    ],
)
def test_secret_key_names_by_their_words(key: str) -> None:
    assert is_secret_key(key)
    assert scrub({key: "hunter2"}) == {key: REDACTED}


# --- linear time -----------------------------------------------------------------------

MB = 1 << 20


def _repeat(unit: str) -> str:
    return unit * (MB // len(unit))


HOSTILE = {
    "pem_begin_without_end": _repeat("-----BEGIN PRIVATE KEY-----"),
    "sk_dash": _repeat("sk-"),
    "bearer_words": _repeat("Bearer "),
    "jwt_prefix": _repeat("eyJ"),
    "jwt_segments": _repeat("eyJab."),
    "url_userinfo": _repeat("://a:"),
    "url_no_at": "https://u:" + _repeat("a:"),
    "basic_words": _repeat("Basic QUJD "),
    "assignments": _repeat("password="),
    "open_quotes": _repeat('api_key:"'),
    "aws_names": _repeat("aws_secret "),
}
BENIGN = _repeat(
    "The model answered in 1.8 s; see https://docs.example.com/guide?page=2 for "
    'the task-management-system-v2 notes, {"max_tokens": 256, "key": "value"}. '
)


def _best_of_three(work: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_megabyte_scrubs_in_time_comparable_to_benign_text(name: str) -> None:
    benign = _best_of_three(lambda: scrub_text(BENIGN))
    hostile = _best_of_three(lambda: scrub_text(HOSTILE[name]))
    assert hostile < 50 * benign, f"{name}: {hostile:.3f}s vs {benign:.3f}s for benign text"


def test_hostile_stream_in_small_chunks_costs_per_chunk_like_benign_text() -> None:
    def stream(text: str) -> None:
        _recorded([text[i : i + 64] for i in range(0, len(text), 64)], hand_off_every=64)

    benign = _best_of_three(lambda: stream(BENIGN))
    for name in ("pem_begin_without_end", "sk_dash", "open_quotes"):
        hostile = _best_of_three(lambda: stream(HOSTILE[name]))  # noqa: B023 - used at once
        assert hostile < 50 * benign, f"{name}: {hostile:.3f}s vs {benign:.3f}s"


# --- properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(before=benign_text, embedded=secrets_with_value, after=benign_text)
def test_every_embedded_secret_is_gone(before: str, embedded: tuple[str, str], after: str) -> None:
    text, secret = embedded
    cleaned = scrub_text(f"{before} {text} {after}")
    assert secret not in cleaned
    assert cleaned.startswith(before)
    assert cleaned.endswith(after)


@settings(max_examples=300, deadline=None)
@given(benign_text)
def test_benign_text_comes_back_unchanged(text: str) -> None:
    assert scrub_text(text) == text


# --- streams ---------------------------------------------------------------------------


def _recorded(chunks: list[str], hand_off_every: int | None = None) -> list[str]:
    """The chunks one streaming run records through the redaction stage, handed off
    every `hand_off_every` chunks mid-stream (as a long stream is) and at its end."""
    stage = Redactor().for_one_trace()
    recorded: list[str] = []
    pending: list[list[object]] = []
    for ts, chunk in enumerate(chunks):
        pending.append([ts, chunk])
        if hand_off_every and len(pending) >= hand_off_every:
            done, pending = stage.chunks("run", pending, final=False)
            recorded += [str(text) for _, text in done]
    done, _ = stage.chunks("run", pending, final=True)
    return recorded + [str(text) for _, text in done]


@pytest.mark.parametrize("hand_off_every", [None, 2, 5])
def test_a_secret_split_across_chunks_is_redacted(hand_off_every: int | None) -> None:
    chunks = ["Here you go:", " Bearer", " abcdef", "ghijklmnop", "qrstuvwxyz", " done."]
    chunks += [" filler text"] * 100
    out = _recorded(chunks, hand_off_every)
    assert len(out) == len(chunks)  # the chunks keep their boundaries
    assert "".join(out) == scrub_text("".join(chunks))
    assert "".join(out).startswith("Here you go: [REDACTED] done.")


@pytest.mark.parametrize("hand_off_every", [None, 3, 40])
def test_a_private_key_streamed_line_by_line_is_redacted(hand_off_every: int | None) -> None:
    body = "\n".join(
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"[:60] for _ in range(50)
    )
    text = f"key:\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nbye " * 3
    out = "".join(_recorded(text.splitlines(keepends=True), hand_off_every))
    assert "MIIE" not in out
    assert out == scrub_text(text)


def test_a_secret_longer_than_the_context_is_still_dropped_across_hand_offs() -> None:
    chunks = ["start -----BEGIN PRIVATE KEY-----\n"]
    chunks += ["QUJDRA" * 10 + "\n" for _ in range(2000)]  # 122 kB, past what is held whole
    chunks += ["-----END PRIVATE KEY----- after"]
    out = "".join(_recorded(chunks, hand_off_every=50))
    assert "QUJD" not in out
    assert out.startswith("start [REDACTED]")
    assert out.endswith(" after")


def test_a_clean_stream_is_recorded_as_it_streamed() -> None:
    chunks = ["hello ", "world", "", " again"] * 200
    assert _recorded(chunks, hand_off_every=7) == chunks


@settings(max_examples=200, deadline=None)
@given(
    before=benign_text,
    embedded=secrets_with_value,
    after=benign_text,
    cuts=st.lists(st.integers(0, 400), max_size=12),
    padding=st.integers(0, 600),
    hand_off_every=st.sampled_from([None, 1, 2, 5]),
)
def test_recorded_in_any_chunks_and_hand_offs_equals_scrubbing_the_whole_text(
    before: str,
    embedded: tuple[str, str],
    after: str,
    cuts: list[int],
    padding: int,
    hand_off_every: int | None,
) -> None:
    text = f"{'x ' * padding}{before} {embedded[0]} {after}"
    bounds = sorted({min(cut, len(text)) for cut in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out = _recorded(chunks, hand_off_every)
    assert len(out) == len(chunks)
    assert embedded[1] not in "".join(out)
    assert "".join(out) == scrub_text(text)


def test_names_are_cheap_to_scrub_and_unchanged() -> None:
    for name in ("RunnableSequence", "ChatOpenAI", "my-chain", "joke", "TokenCounter"):
        assert scrub_text(name) is name
    assert scrub_text("chain sk-proj-abcdefghijklmnopqrstuvwx123456") == f"chain {REDACTED}"
