"""Errors the CLI turns into exit status 2 (bad input) with one `error:` line and no traceback."""


class UserError(Exception):
    """Input that cannot be used (config, search space, data, CLI argument); nothing has been written."""
