"""Commands of the command line that live in modules of their own: each has `register(commands)`,
which adds its parser to the `lrmscope` subcommands and sets its function."""
