"""Sub-commands of the `spadekit` CLI, one module each (see `spadekit.cli`)."""
