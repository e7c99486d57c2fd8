"""``python -m cococxr`` runs the command line."""
import sys

from cococxr.cli import main

sys.exit(main())
