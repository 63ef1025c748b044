"""Errors raised while reading a checkpoint."""


class CheckpointError(RuntimeError):
    """A checkpoint folder or file cannot be used; the message names the file or key at fault."""
