"""The command line: argparse, printing, one-line errors; the commands in commands/."""
