"""The one base class of errors a user can fix (bad params, missing or corrupt data, missing weights).

Every stage raises a subclass with a message that names the file/key and the fix; the CLI prints
such errors as one line and exits 2, without a traceback.
"""


class CdfvError(Exception):
    """A failure whose message tells the user what to fix."""
