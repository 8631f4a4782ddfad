"""lanai.mesh.security.invites: join tokens (encode/decode, refusing damaged ones with what to do) and
the inviter's records (redeemed once per use, refused when wrong, expired or used up; pruned)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from lanai.mesh.security import invites
from lanai.mesh.security.invites import ASK_AGAIN, TOKEN_PREFIX, Invite, InviteError, Token

MESH = "0f" * 32
TOKEN = Token(MESH, "192.168.1.10", 50051, 9464, "ca-node", "a1b2c3d4", "s3cr3t-s3cr3t")
NOW = 1_900_000_000


def pack(data: object) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def record(secret: str = "s3cr3t", *, expires: int = NOW + 3600, uses: int = 1) -> Invite:
    return Invite(hashlib.sha256(secret.encode()).hexdigest(), expires, uses)


# --- tokens ---------------------------------------------------------------------------------------------------


def test_a_token_round_trips() -> None:
    text = TOKEN.encode()
    assert text.startswith(TOKEN_PREFIX)
    assert invites.decode(text) == TOKEN


def test_a_token_is_one_word_without_padding() -> None:
    text = TOKEN.encode()
    assert not any(c.isspace() for c in text)
    assert "=" not in text and "+" not in text and "/" not in text


def test_an_ipv6_host_round_trips() -> None:
    token = Token(MESH, "fd00::1", 1, 2, "n", "i", "s")
    assert invites.decode(token.encode()) == token


def test_surrounding_whitespace_is_ignored() -> None:
    assert invites.decode(f"  {TOKEN.encode()}\n") == TOKEN


@pytest.mark.parametrize("text", ["", "hello", "lanai-join-2.e30", "LANAI-JOIN-1.e30",
                                  "lanai node --join lanai-join-1.e30"])
def test_a_string_that_is_no_lanai_token_is_refused(text: str) -> None:
    with pytest.raises(InviteError, match="not a lanai join token") as info:
        invites.decode(text)
    assert ASK_AGAIN in str(info.value)


def damaged() -> list[str]:
    good = TOKEN.encode()
    fields = {"m": MESH, "h": "h", "p": 1, "w": 2, "n": "n", "i": "i", "s": "s"}
    return [
        good[: len(good) // 2],  # copied in part
        good[:-3],
        TOKEN_PREFIX,
        TOKEN_PREFIX + "!!!!",
        TOKEN_PREFIX + "a",  # one base64 character too many
        pack([1, 2, 3]),
        pack("a string"),
        pack({k: v for k, v in fields.items() if k != "s"}),
        pack({**fields, "p": "not a port"}),
        pack({**fields, "w": None}),
    ]


@pytest.mark.parametrize("text", damaged())
def test_a_damaged_token_is_refused_with_what_to_do(text: str) -> None:
    with pytest.raises(InviteError, match="damaged") as info:
        invites.decode(text)
    assert ASK_AGAIN in str(info.value)


@pytest.mark.parametrize("mesh", ["", "0f" * 16, "0f" * 33])
def test_a_token_with_a_malformed_fingerprint_is_refused(mesh: str) -> None:
    with pytest.raises(InviteError, match="fingerprint is malformed") as info:
        invites.decode(Token(mesh, "h", 1, 2, "n", "i", "s").encode())
    assert ASK_AGAIN in str(info.value)


# --- new invites ----------------------------------------------------------------------------------------------


def test_a_new_invite_keeps_only_the_secrets_hash() -> None:
    invite_id, secret, made = invites.new_invite(NOW, 3600, 2)
    assert made == Invite(hashlib.sha256(secret.encode()).hexdigest(), NOW + 3600, 2)
    assert secret not in made.secret_sha256
    assert len(invite_id) == 8 and len(secret) >= 32


def test_new_invites_differ() -> None:
    a, b = invites.new_invite(NOW, 60, 1), invites.new_invite(NOW, 60, 1)
    assert a[0] != b[0] and a[1] != b[1]


@pytest.mark.parametrize(("ttl", "uses"), [(0, 1), (-5, 1), (60, 0), (60, -1)])
def test_an_invite_needs_a_positive_ttl_and_uses(ttl: int, uses: int) -> None:
    with pytest.raises(InviteError, match="positive"):
        invites.new_invite(NOW, ttl, uses)


# --- redeem ---------------------------------------------------------------------------------------------------


def test_redeeming_uses_one_use_and_leaves_the_rest() -> None:
    before = {"inv": record(uses=2), "other": record("x")}
    after = invites.redeem(before, "inv", "s3cr3t", NOW)
    assert after["inv"] == record(uses=1)
    assert after["other"] == before["other"]
    assert before["inv"].uses == 2  # the mapping given is not changed


def test_a_two_use_invite_admits_two_and_then_no_more() -> None:
    state = {"inv": record(uses=2)}
    state = invites.redeem(state, "inv", "s3cr3t", NOW)
    state = invites.redeem(state, "inv", "s3cr3t", NOW + 1)
    assert state["inv"].uses == 0
    with pytest.raises(InviteError, match="already used"):
        invites.redeem(state, "inv", "s3cr3t", NOW + 2)


def refusal(invite_map: dict[str, Invite], invite_id: str, secret: str, now: int) -> str:
    with pytest.raises(InviteError) as info:
        invites.redeem(invite_map, invite_id, secret, now)
    message = str(info.value)
    assert ASK_AGAIN in message
    return message


def test_an_unknown_invite_is_refused() -> None:
    assert "no such invite" in refusal({"inv": record()}, "nope", "s3cr3t", NOW)


def test_a_wrong_secret_is_refused() -> None:
    assert "secret is wrong" in refusal({"inv": record()}, "inv", "guess", NOW)


def test_an_expired_invite_is_refused() -> None:
    message = refusal({"inv": record(expires=NOW - 30)}, "inv", "s3cr3t", NOW)
    assert "expired 30 s ago" in message


def test_an_invite_expires_at_its_expiry_second() -> None:
    assert invites.redeem({"inv": record(expires=NOW + 1)}, "inv", "s3cr3t", NOW)["inv"].uses == 0
    assert "expired" in refusal({"inv": record(expires=NOW)}, "inv", "s3cr3t", NOW)


def test_a_used_up_invite_is_refused() -> None:
    assert "already used" in refusal({"inv": record(uses=0)}, "inv", "s3cr3t", NOW)


def test_the_four_refusals_say_different_things() -> None:
    messages = {
        refusal({"inv": record()}, "nope", "s3cr3t", NOW),
        refusal({"inv": record()}, "inv", "guess", NOW),
        refusal({"inv": record(expires=NOW - 1)}, "inv", "s3cr3t", NOW),
        refusal({"inv": record(uses=0)}, "inv", "s3cr3t", NOW),
    }
    assert len(messages) == 4


def test_a_wrong_secret_does_not_learn_whether_the_invite_expired() -> None:
    assert "secret is wrong" in refusal({"inv": record(expires=NOW - 1, uses=0)}, "inv", "guess", NOW)


# --- prune ----------------------------------------------------------------------------------------------------


def test_prune_drops_invites_expired_over_a_day_ago() -> None:
    kept = invites.prune({"live": record(expires=NOW + 10), "recent": record(expires=NOW - 86399),
                          "old": record(expires=NOW - 86400), "ancient": record(expires=NOW - 10**6)}, NOW)
    assert set(kept) == {"live", "recent"}


def test_prune_keeps_used_up_invites_until_they_expire() -> None:
    assert set(invites.prune({"used": record(uses=0)}, NOW)) == {"used"}
