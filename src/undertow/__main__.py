import signal
import sys

# A Ctrl-C before the command line takes over (undertow.cli.main) ends the process quietly
# instead of printing a KeyboardInterrupt traceback from an import.
signal.signal(signal.SIGINT, signal.SIG_DFL)

from .cli import main  # noqa: E402

sys.exit(main())
