"""Errors a user can fix. Entry points print them as one line and exit non-zero (see ppnas.cli)."""


class PpnasError(Exception):
    """Base class: the message alone tells the user what is wrong and what to do."""


class ConfigError(PpnasError):
    """A config file, key, value or command-line override is wrong."""


class DataError(PpnasError):
    """A dataset path or annotation file is missing or malformed."""


class SearchSpaceError(PpnasError):
    """Unknown search space, or tokens that do not fit it."""


class ConstraintError(PpnasError):
    """A constraint cannot be evaluated or cannot be met."""


class TableError(PpnasError):
    """A latency table is malformed or lacks keys."""


class ExportError(PpnasError):
    """A found model cannot be exported: weights that do not fit it, a missing converter, outputs that disagree."""


class ControllerError(PpnasError):
    """The search controller (local or remote) cannot go on."""


class SearchFinished(Exception):
    """Not an error: a remote controller's server has all the rewards it wants, so the search ends."""
