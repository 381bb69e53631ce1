"""The ``greycloud`` command line (private; the entry point is ``greycloud.cli:main``).

prompts.py    reading and checking the input JSONL file
journal.py    the output JSONL file: resume, repair, durable appends
results.py    one output line, from a response or an error
runner.py     running the lines through the client under the limits
progress.py   progress on stderr (rich on a terminal, log lines otherwise)
target.py     which service to talk to (real, an endpoint, or an embedded emulator)
common.py     exit codes, the stderr console, messages and options every command shares
resources.py  the ``cache`` and ``batch`` command groups
app.py        the typer application: run, generate, count-tokens, emulator
"""
