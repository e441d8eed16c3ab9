"""Sub-commands of ``mcptool``, one module per job; ``mcptool.cli`` imports them lazily.

A command raises ``mcptool.errors.McptoolError`` (or a subclass) for anything a user
can cause, and may return an ``int`` as its exit code.
"""
