import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
    assert set(namespace["engine"].decide(namespace["answers"])["status"]) <= {"accepted", "more", "escalated"}


def test_readme_starts_with_the_two_commands():
    commands = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(commands) == 2
    assert "pytest" in commands[1] and "crowdloop" in commands[0]
