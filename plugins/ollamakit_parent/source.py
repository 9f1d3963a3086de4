"""Copy a stored model's layers into a new one, each marked ``from`` the parent. A parent that
is not in the store is pulled first when its name is a registry reference (it names its host)
and a registry client is installed."""

from __future__ import annotations

from ollamakit import manifest as mf
from ollamakit.errors import NotFound
from ollamakit.interfaces import ModelSource
from ollamakit.names import ModelName

# Layers whose header feeds the new config (family, parameter size, file type).
WEIGHT_LAYERS = (mf.MODEL, mf.PROJECTOR, mf.ADAPTER, mf.DRAFT)
# Config fields that describe the machine image, not the model: never inherited.
NOT_INHERITED = ("architecture", "os", "rootfs")


def names_a_registry(text: str) -> bool:
    """Whether ``text`` names its registry: ``host/namespace/model`` or a URL. A bare name that
    is not in the store is far likelier a typo or a local model that is gone than a request to
    fetch from the public registry, so it is a 404 that never touches the network."""
    return "://" in text or text.count("/") == 2


def registry_pull():
    """The registry plugin's ``pull_model(kernel, name)``, or None when it is not installed."""
    try:
        from ollamakit_registry.pull import pull_model
    except ImportError:
        return None
    return pull_model


class ParentModelSource(ModelSource):
    def __init__(self, name: str, pull=None):
        self.name = name
        self.pull = pull

    def build(self, ctx):
        name = ModelName.parse(self.name)
        parent = ctx.store.get(name)
        if parent is None and self.pull is not None and names_a_registry(self.name):
            yield from self.pull(ctx.kernel, name)  # its statuses, its own "success" included
            parent = ctx.store.get(name)
        if parent is None:
            raise NotFound(f"model '{self.name}' not found")
        from_ = parent.short_name
        for layer in parent.manifest.layers:
            # A weight file in no format an installed plugin reads has no header: the parent's
            # config is then inherited as it is, and no engine is asked about it.
            header = ctx.store.model_header(layer.digest) if layer.media_type in WEIGHT_LAYERS else None
            ctx.add_blob(layer.media_type, layer.digest, from_=from_, header=header, origin="parent",
                         layer_name=layer.name)
        ctx.config = {k: v for k, v in parent.config.items() if k not in NOT_INHERITED}
