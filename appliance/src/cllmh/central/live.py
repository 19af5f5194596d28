"""Live view grants: which camera of which site the dashboard may play, and the signed URL for it.

The token format is `cllmh.livetoken`'s (one definition, verified at the site by its status page);
this module only decides whether to mint one and where the playlist is. Pure: no clock, no I/O
besides the secret given by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cllmh import livetoken
from cllmh.central.config import LiveSite


class LiveRefusedError(Exception):
    """Why no token is minted; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Grant:
    playlist: str
    token: str
    expires: int

    def json(self) -> dict[str, Any]:
        return {"playlist": self.playlist, "token": self.token, "expires": self.expires}


def playlist_url(base_url: str, camera: str) -> str:
    """The site's HLS playlist of `camera` (nginx_rtmp serves /hls/<camera>/index.m3u8)."""
    return f"{base_url.rstrip('/')}/hls/{camera}/index.m3u8"


def grant(  # noqa: PLR0917 (each argument is one fact of the decision)
    site: str,
    camera: str,
    reported: list[dict[str, Any]],
    where: LiveSite | None,
    secret: bytes,
    now: float,
    ttl_s: int,
) -> Grant:
    """A token for `camera` of `site`, when head office knows the site's URL and the site reported
    the camera in its last heartbeat."""
    if where is None:
        message = f"no live view configured for site {site} / tayangan langsung belum diatur"
        raise LiveRefusedError(404, message)
    if camera not in {c.get("name") for c in reported}:
        raise LiveRefusedError(404, f"site {site} reported no camera {camera} / kamera tidak dikenal")
    token = livetoken.mint(secret, site, camera, now, ttl_s)
    expires = livetoken.expires_at(token)
    assert expires is not None
    return Grant(playlist_url(where.url, camera), token, expires)


@dataclass(frozen=True)
class ClipGrant:
    url: str  # the clip at the site, with its token
    expires: int

    def json(self) -> dict[str, Any]:
        return {"url": self.url, "expires": self.expires}


def site_event_id(event_id: str, camera: str) -> str:
    """The site's own id of an event head office names `<camera>/<id>` (cllmh.report)."""
    return event_id.removeprefix(f"{camera}/")


def clip_url(base_url: str, event_id: str, token: str) -> str:
    """The event's clip on the site's status page (it answers a token of the event's camera)."""
    return f"{base_url.rstrip('/')}/api/v1/events/{quote(event_id, safe='')}/clip.mp4?token={token}"


def clip_grant(  # noqa: PLR0917 (each argument is one fact of the decision)
    site: str,
    event: dict[str, Any] | None,
    where: LiveSite | None,
    secret: bytes,
    now: float,
    ttl_s: int,
) -> ClipGrant:
    """The URL of an event's clip at the site with a token of the event's camera: the same token
    as that camera's live view (the site checks it for the camera of the clip's event)."""
    if where is None:
        message = f"no live view configured for site {site} / tayangan langsung belum diatur"
        raise LiveRefusedError(404, message)
    if event is None or not event.get("clip_path"):
        raise LiveRefusedError(404, f"site {site} reported no clip for this event / klip tidak ada")
    camera = str(event["camera"])
    token = livetoken.mint(secret, site, camera, now, ttl_s)
    expires = livetoken.expires_at(token)
    assert expires is not None
    return ClipGrant(clip_url(where.url, site_event_id(str(event["id"]), camera), token), expires)
