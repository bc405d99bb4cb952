"""A collector for a made-up GPU tool `fakegpu-smi` that prints `MiB used / MiB total`."""

from llmops.plugins.api import Collector, Telemetry


class FakeGpu(Collector):
    name = "fakegpu"
    description = "VRAM used/total from `fakegpu-smi`"
    requires = "fakegpu-smi"

    def command(self) -> str:
        return "fakegpu-smi"

    def parse(self, text: str) -> Telemetry:
        used, _, total = text.partition("/")
        mib = 1024 ** 2
        return Telemetry("fakegpu", devices=[{"index": 0, "vram_used_bytes": int(used) * mib,
                                              "vram_total_bytes": int(total) * mib}])
