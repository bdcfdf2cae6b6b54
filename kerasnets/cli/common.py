"""What kerasnets' command lines share: the ``-v`` flag, the log format, what is hidden unless
``-v`` (TensorFlow's native log lines), and the exit status of a failed run.

Every command writes its result (JSON or a table) to stdout and nothing else there; logs, Keras
progress and progress bars go to stderr.
"""

import contextlib
import logging
import os
import sys
import tempfile

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2
VERBOSE_FLAGS = ("-v", "--verbose")

# Python loggers of the libraries under kerasnets: converter and SavedModel chatter at INFO and
# WARNING ("Assets written to ...", "Found untraced functions ..."), shown with -v only.
_LIBRARY_LOGGERS = ("tensorflow", "absl", "h5py")


def add_verbose_argument(parser):
    """Returns ``parser`` after adding the ``-v/--verbose`` flag every kerasnets command takes."""
    parser.add_argument(*VERBOSE_FLAGS, action="store_true",
                        help="debug logging, and TensorFlow's own log lines (hidden otherwise)")
    return parser


def configure_logging(level=None, verbose=False):
    """Logs to stderr as ``HH:MM:SS LEVEL message``, the format of every kerasnets command.

    ``level`` (a ``logging`` level or its name, default INFO) applies to every logger; with
    ``verbose`` kerasnets' own loggers also show DEBUG, and the Python loggers of TensorFlow,
    absl and h5py follow ``level``; without it they show errors only. A second call changes the
    levels and keeps the one handler.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if level is None else level)
    logging.getLogger("kerasnets").setLevel(logging.DEBUG if verbose else logging.NOTSET)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)


def wants_verbose(argv):
    """Returns whether the command-line arguments ``argv`` (before any ``--``) ask for ``-v``."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in VERBOSE_FLAGS:
            return True
    return False


def hide_native_stderr():
    """Returns a function that writes out what was hidden, after sending what native code
    writes to file descriptor 2 to a temporary file for the rest of the process.

    Hidden: TensorFlow's C++/absl log lines (written at import, before any TensorFlow setting is
    read, and at exit), the TFLite converter's and LiteRT's messages. Python's ``sys.stderr``
    (logs, progress) is pointed at the terminal's stderr and still reaches it. For the
    ``kerasnets`` process only: it changes the process' file descriptors for good.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    hidden = tempfile.TemporaryFile()
    os.dup2(hidden.fileno(), 2)
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                      errors="backslashreplace")

    def write_hidden():
        sys.stderr.flush()
        hidden.seek(0)
        os.write(terminal, hidden.read())

    return write_hidden


def call_reporting_errors(log, function, *args, errors=(OSError,), **kwargs):
    """Returns ``(exit_status, result)`` of ``function(*args, **kwargs)``.

    ``(0, result)`` on success. A ``ValueError`` (bad input) gives ``(2, None)``, one of
    ``errors`` (default ``OSError``: a file that cannot be read or written) ``(1, None)``; either
    is logged with ``log`` as one error line, its message, without a traceback. Anything else
    propagates. What the function prints goes to stderr (Keras progress lines, for one): stdout
    holds the command's result alone.
    """
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return EXIT_OK, function(*args, **kwargs)
    except ValueError as err:
        log.error("%s", err)
        return EXIT_BAD_INPUT, None
    except errors as err:
        log.error("%s", err)
        return EXIT_ERROR, None
