"""The `gibbous` subcommands, one module each (`gibbous.cli.COMMANDS` lists them in the
order `gibbous --help` shows). A command module has `NAME`, `add_parser(commands)` adding its
subparser to the top-level parser's subparsers, and `run(args, stdout, stdin)` returning the
exit status; `options` holds what they share, `reference` renders the Markdown reference.

A command imports its server stack, the kubernetes client and the cloud SDKs inside `run`,
not at module import, so that `gibbous estimate` starts fast."""
