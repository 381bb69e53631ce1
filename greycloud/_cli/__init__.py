"""The ``greycloud`` command line (private; the entry point is ``greycloud.cli:main``).

jsonl_input.py   any JSONL input as a stream: a checking pass, then a pass that yields lines
prompts.py       the lines of `greycloud run`: parsing and checking one line
journal.py       the output JSONL file: resume, repair, durable appends, in bounded chunks
group_commit.py  appends from a writer thread, one fsync per group of finished lines
interrupts.py    SIGINT/SIGTERM while the command starts up
run_command.py   what `greycloud run` does: check, plan, run, report
results.py       one output line, from a response or an error
runner.py        running the lines through the client under the limits
progress.py      progress on stderr (rich on a terminal, log lines otherwise)
target.py        which service to talk to (real, an endpoint, or an embedded emulator)
common.py        exit codes, the stderr console, messages and options every command shares
resources.py     the ``cache`` and ``batch`` command groups
app.py           the typer application: run, generate, count-tokens, emulator
"""
