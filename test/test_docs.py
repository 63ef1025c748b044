"""The README and docs/ stay in step with the code, and read as one manual: every link between them lands."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def test_the_parameter_page_is_the_declarations():
    """docs/parameters.md's table is generated from ros/params.py; any drift fails here."""
    from mllmseg_ros.ros.params import PARAMETERS
    from mllmseg_ros.tools.param_table import PAGE, documented, table

    page = PAGE.read_text()
    assert documented(page) == table(), "run: python -m mllmseg_ros.tools.param_table --write"
    missing = [p.name for p in PARAMETERS if f"| `{p.name}` |" not in page]
    assert not missing


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 150
    for page in ("node", "parameters", "commands", "models", "jetson", "training", "evaluation", "architecture"):
        assert f"(docs/{page}.md" in README, page


def test_links_between_the_pages_land():
    """Every relative link in the README, docs/ and benchmarks/README.md names a file that exists, and an anchor
    (#...) names a heading of that page (GitHub's slugs: lower case, punctuation dropped, spaces as dashes)."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
                if anchor not in slugs:
                    broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


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
