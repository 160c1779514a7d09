"""One module per `dualbus` subcommand; each exposes `register(subparsers, common)`."""
