"""The `flowboard` subcommands other than `serve`: one module each."""
