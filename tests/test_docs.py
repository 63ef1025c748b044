"""README tables stay in step with the code."""
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_node_parameter_is_documented():
    from mllmseg_ros.ros.params import PARAMETERS

    missing = [p.name for p in PARAMETERS if f"| `{p.name}` |" not in README]
    assert not missing


def test_readme_starts_with_the_two_setup_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["scripts/demo.sh", "scripts/test.sh"]


def test_the_command_accuracy_table_is_the_scripts():
    """benchmarks/README.md reports what benchmarks/bench_commands.py computes on the project corpus today."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from bench_commands import MARKERS, README, read_corpus, score, table

    documented = README.read_text().split(MARKERS[0], 1)[1].split(MARKERS[1], 1)[0]
    assert documented.strip() == table(score(read_corpus())[0]), "run benchmarks/bench_commands.py --write-readme"
