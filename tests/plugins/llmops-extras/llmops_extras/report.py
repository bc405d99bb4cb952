"""A whole reporter plugin: tokens generated per variant, as plain text."""

from pathlib import Path

from llmops.plugins.api import Reporter
from llmops.record.reader import read_run


class TokensReporter(Reporter):
    name = "tokens"
    description = "Generated tokens per second at each level, one line per variant"
    suffix = ".txt"

    def render(self, run_dir: Path) -> str:
        lines = []
        for cell in read_run(run_dir).cells:  # typed, and a broken results.json is refused for us
            speeds = [f"c{lv.concurrency}={lv.gen_tps or 0:.1f}" for lv in cell.levels]
            lines.append(f"{cell.name}: {' '.join(speeds) or 'no levels'}")
        return "\n".join(lines) + "\n"
