"""Record what the installed vLLM does with each case's adapter: ``vllm_verdicts.json``.

Run in the environment .ci/serving builds (vLLM 0.33.0): ``python tests/serving/record.py``.
The tests there check the record against the installed vLLM on every run, and the built-in
rules against the record everywhere.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]

import adapters  # noqa: E402
import verdicts  # noqa: E402

from modmatch.serving import vllm  # noqa: E402


def main() -> None:
    runner = vllm.installed()
    if runner is None:
        sys.exit("record.py needs vLLM 0.33 installed: run it in .venvs/vllm-0.33.0")
    found = {}
    with tempfile.TemporaryDirectory() as root:
        for name in sorted(adapters.CASES):
            answer = verdicts.serve(*adapters.make(Path(root), name))
            found[name] = {key: answer[key] for key in verdicts.KEPT}
            print(name, answer["loads"], answer["error"], file=sys.stderr)
    document = {"vllm": runner.VERSION, "cases": found}
    verdicts.RECORDED.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
