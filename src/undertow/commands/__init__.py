"""Subcommands of the ``undertow`` CLI, one module each (see ``undertow.cli``)."""
