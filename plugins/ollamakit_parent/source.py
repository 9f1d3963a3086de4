"""Copy a stored model's layers into a new one, each marked ``from`` the parent. A parent that
is not in the store is pulled first when its name is a registry reference (it names its host)
and a registry client is installed (hook ``pull_model``)."""

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


class ParentModelSource(ModelSource):
    def __init__(self, name: str):
        self.name = name

    def build(self, ctx):
        name = ModelName.parse(self.name)
        parent = ctx.store.get(name)
        if parent is None and names_a_registry(self.name):
            # a registry client (hook ``pull_model``), when one is installed
            pulling = ctx.kernel.hook.pull_model(kernel=ctx.kernel, name=name)
            if pulling is not None:
                yield from pulling  # its statuses, its own "success" included
                parent = ctx.store.get(name)
        if parent is None:
            raise NotFound(f"model '{self.name}' not found")
        from_ = parent.short_name
        for layer in parent.manifest.layers:
            # A weight file in no format an installed plugin reads has no header: the parent's
            # config is then inherited as it is, and no engine is asked about it.
            header = (
                ctx.store.model_header(layer.digest) if layer.media_type in WEIGHT_LAYERS else None
            )
            ctx.add_blob(
                layer.media_type,
                layer.digest,
                from_=from_,
                header=header,
                origin="parent",
                layer_name=layer.name,
            )
        ctx.config = {k: v for k, v in parent.config.items() if k not in NOT_INHERITED}
