"""Record what the installed engine does with each case's adapter: ``ENGINE_verdicts.json``.

Run in the environment its CI script builds: ``python tests/serving/record.py vllm`` in
.ci/serving's (vLLM 0.33.0), ``python tests/serving/record.py sglang`` in .ci/serving-sglang's
(SGLang 0.5.23). The tests there check the record against the installed engine on every run,
and the built-in rules against the record everywhere.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]

import adapters  # noqa: E402
import verdicts  # noqa: E402

from modmatch.serving import engines  # noqa: E402


def main(engine: str) -> None:
    runner = engines()[engine].installed()  # type: ignore[attr-defined]
    if runner is None:
        sys.exit(f"record.py needs {engine} installed: run it in its CI script's environment")
    found = {}
    with tempfile.TemporaryDirectory() as root:
        for name in verdicts.cases(engine):
            flags = adapters.CASES[name].flags
            answer = verdicts.serve(*adapters.make(Path(root), name), *flags, engine=engine)
            found[name] = {key: answer[key] for key in verdicts.KEPT}
            print(name, answer["loads"], answer["error"], answer["request_error"], file=sys.stderr)
    document = {engine: runner.VERSION, "cases": found}
    verdicts.record_file(engine).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "vllm")
