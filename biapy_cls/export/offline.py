"""bioimageio.spec checks every author's `github_user` online while it validates a package, and a failed
connection (no network) makes the whole package invalid: only a timeout is forgiven. These helpers check
the users once, here; where GitHub cannot be reached they are recorded as known in bioimageio.spec's own
cache of verified users, so that validation and bioimageio.core's model test work offline too. A user that
GitHub answers does not exist stays an error."""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("biapy_cls")


def github_users(source) -> list[str]:
    """The github_user of every author and maintainer of a package (folder, rdf.yaml, zip), unvalidated."""
    from bioimageio.spec.utils import open_bioimageio_yaml

    content = open_bioimageio_yaml(source).content
    people = list(content.get("authors") or []) + list(content.get("maintainers") or [])
    return [str(p["github_user"]) for p in people if isinstance(p, dict) and p.get("github_user")]


def allow_offline(users: Iterable[str]) -> list[str]:
    """Verify `users` as bioimageio.spec would; return those that could not be checked (offline).
    Raises ValueError for a user GitHub says does not exist."""
    import httpx
    from bioimageio.spec._internal import field_validation

    unchecked = []
    for user in dict.fromkeys(users):
        try:
            field_validation.validate_github_user(user)
        except httpx.HTTPError:
            field_validation.KNOWN_GITHUB_USERS.add(user.lower())
            unchecked.append(user)
    if unchecked:
        log.warning(f"GitHub cannot be reached, so the github_user(s) {', '.join(unchecked)} are not verified.")
    return unchecked
