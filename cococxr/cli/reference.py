"""Write docs/cli.md from the parsers: ``python -m cococxr.cli.reference [OUT]``."""
import sys

from cococxr.atomic import atomic_write_text
from cococxr.cli import reference_markdown

if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "docs/cli.md"
    atomic_write_text(target, reference_markdown())
    print(f"wrote {target}")
