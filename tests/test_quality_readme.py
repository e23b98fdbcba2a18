import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quality_and_planning_example_runs():
    section = README.read_text().split('## Label errors and "how much data?"', 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```py\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["find_label_errors"](namespace["labels"], namespace["probs"]).sum() == 1
    assert namespace["curve"].labels_for(0.85).estimate > 2000
