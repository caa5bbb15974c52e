import sys

# undertow/__init__ has already given SIGINT its default action (a quiet end) for the command.
from .cli import main

sys.exit(main())
