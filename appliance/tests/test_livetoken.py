"""Live-view tokens: one camera of one site, until their expiry, with that site's secret only."""

from __future__ import annotations

import pytest

from cllmh import livetoken

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def check(token: str, *, site: str = "toko-1", camera: str = "gate", now: float = NOW) -> livetoken.Verdict:
    return livetoken.verify(SECRET, site, camera, token, now)


def test_a_minted_token_opens_its_camera_until_it_expires() -> None:
    token = livetoken.mint(SECRET, "toko-1", "gate", NOW, ttl_s=600)
    assert livetoken.expires_at(token) == int(NOW) + 600
    assert check(token).ok
    assert check(token, now=NOW + 599).ok
    assert check(token, now=NOW + 600) == livetoken.Verdict(False, "expired")


@pytest.mark.parametrize(("site", "camera"), [("toko-1", "yard"), ("toko-2", "gate")])
def test_a_token_opens_no_other_camera_or_site(site: str, camera: str) -> None:
    token = livetoken.mint(SECRET, "toko-1", "gate", NOW)
    assert not check(token, site=site, camera=camera).ok


def test_another_secret_or_an_edited_expiry_is_refused() -> None:
    token = livetoken.mint(b"o" * 32, "toko-1", "gate", NOW)
    assert not check(token).ok
    version, expires, mac = livetoken.mint(SECRET, "toko-1", "gate", NOW).split(".")
    assert not check(f"{version}.{int(expires) + 3600}.{mac}").ok


@pytest.mark.parametrize("token", ["", "v1", "v1.x.y", "v2.1800000600.abc", "v1.1800000600", "a.b.c.d"])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert check(token) == livetoken.Verdict(False, "malformed")


def test_a_token_valid_too_far_ahead_is_refused() -> None:
    token = livetoken.mint(SECRET, "toko-1", "gate", NOW + 2 * livetoken.MAX_TTL_S)
    assert check(token) == livetoken.Verdict(False, "expiry too far ahead")


def test_short_secrets_and_long_lifetimes_are_refused_at_minting() -> None:
    with pytest.raises(ValueError, match="too short"):
        livetoken.mint(b"short", "toko-1", "gate", NOW)
    with pytest.raises(ValueError, match="ttl_s"):
        livetoken.mint(SECRET, "toko-1", "gate", NOW, ttl_s=livetoken.MAX_TTL_S + 1)
