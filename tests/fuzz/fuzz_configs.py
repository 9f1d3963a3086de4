"""The model-folder config fuzz target: the ``config.json`` of each architecture's seeded
safetensors folder (``tests/plugins/safetensors/arch_folders.py``) and the ``adapter_config.json``
of a PEFT and an mlx-lm adapter, one value replaced by a hostile one (a boundary number, a float
past float32's range, NaN, a string, a list, an object), then the conversion planned and
written as create runs it. The tensors stay right, so a case reaches every check of the config.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import strategies as st

from fuzz_targets import BOUNDARY, Target, _scratch, json_value

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "safetensors"))

HOSTILE = st.one_of(
    st.sampled_from(
        [0, -1, 1.5, 1e39, -1e39, 1e308, float("nan"), float("inf"), "", "x", None, True, [], {}]
    ),
    st.sampled_from(BOUNDARY),
    json_value,
)
ADAPTERS = ("peft", "mlx")


class ConfigTarget(Target):
    name = "configs"

    def __init__(self):
        super().__init__()
        import arch_folders
        from peft_folders import decoder_folder, mlx_adapter, peft_adapter

        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-config-", dir=_scratch()))
        self.configs = {}
        for name in arch_folders.FOLDERS:
            written = arch_folders.write(name, self.folder / name)
            self.configs[name] = json.loads((written / "config.json").read_text())
        base = decoder_folder("llama", self.folder / "base")
        peft_adapter(base, self.folder / "peft")
        mlx_adapter(base, self.folder / "mlx")
        for name in ADAPTERS:
            self.configs[name] = json.loads(
                (self.folder / name / "adapter_config.json").read_text()
            )
        self.base = self._plan(base).write(self.folder / "base.gguf")
        keys = [
            (name, path)
            for name, config in self.configs.items()
            for key, value in config.items()
            for path in [(key,)]
            + [(key, inner) for inner in (value if isinstance(value, dict) else ())]
        ]
        self.strategy = st.tuples(st.sampled_from(keys), HOSTILE)

    @staticmethod
    def _plan(folder: Path):
        from hf_export import folder_files
        from ollamakit_safetensors.convert import plan_conversion
        from ollamakit_safetensors.folder import ModelFolder

        return plan_conversion(ModelFolder(folder_files(folder)), "fuzz")

    def run(self, case) -> list[str]:
        from hf_export import folder_files
        from ollamakit_safetensors.adapter import plan_adapter
        from ollamakit_safetensors.folder import ModelFolder

        from ollamakit.lib.gguf import GGUFFile

        (name, path), value = case
        config = copy.deepcopy(self.configs[name])
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        folder = self.folder / name
        file = "adapter_config.json" if name in ADAPTERS else "config.json"
        (folder / file).write_text(json.dumps(config))
        if name in ADAPTERS:
            with GGUFFile.open(self.base) as base:
                plan_adapter(ModelFolder(folder_files(folder)), base).write(self.folder / "out")
        else:
            self._plan(folder).write(self.folder / "out")
        return []

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)
