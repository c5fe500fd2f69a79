"""Errors that the export CLI reports as one clear line."""


class ExportError(Exception):
    """An export that cannot proceed: unsupported model, missing path, hub unreachable, ..."""
