"""``/api/create`` with a ``from`` model that is not local pulls it first (through the hook
``pull_model``, which the registry plugin answers), streaming the pull's statuses."""

from __future__ import annotations

import os

from registry_fakes import sha
from registry_helpers import statuses


def test_create_from_a_remote_model_pulls_it_first(instance, fake_registry):
    layer = os.urandom(2000)
    fake_registry.add_model("library/base:latest", layer)
    target = instance()
    remote = f"http://{fake_registry.host}/library/base:latest"
    events = target.post("/api/create", {"model": "mine", "from": remote, "system": "Be brief."})
    assert events[-1] == {"status": "success"}, events[-3:]
    seen = statuses(events)
    assert (
        seen.index("pulling manifest")
        < seen.index("verifying sha256 digest")
        < seen.index("writing manifest")
    )
    assert target.kernel.store.get(f"{fake_registry.host}/library/base:latest") is not None
    mine = target.kernel.store.get("mine")
    assert sha(layer) in mine.manifest.digests() and mine.system == "Be brief."
