"""The one exception type for user mistakes.

Anything the user can fix (a wrong path, a bad option value, an incompatible checkpoint) is raised as
`UserError`; the CLI prints its message on one line and exits with code 2. Everything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, explained in one line."""
