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
    assert commands[0].endswith(".venv/bin/crowdloop demo") and '".[plot]"' in commands[0]
    assert "pytest" in commands[1]


def test_readme_says_what_the_demo_prints():
    text = README.read_text()
    paragraph = text[text.index("The first command") :].split("\n\n")[0]
    for words in ("product titles", "CC BY-SA 4.0", "1 human + model >= 0.8", "crowdloop-demo.png"):
        assert words in paragraph
