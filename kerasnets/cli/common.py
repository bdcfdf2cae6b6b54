"""What kerasnets' command lines share: the log format and the exit status of a failed run."""

import logging

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def configure_logging(level=logging.INFO):
    """Logs to stderr as ``HH:MM:SS LEVEL message``, the format of every kerasnets script."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")


def call_reporting_errors(log, function, *args, errors=(OSError,), **kwargs):
    """Returns ``(exit_status, result)`` of ``function(*args, **kwargs)``.

    ``(0, result)`` on success. A ``ValueError`` (bad input) gives ``(2, None)``, one of
    ``errors`` (default ``OSError``: a file that cannot be read or written) ``(1, None)``; either
    is logged with ``log`` as one error line, its message, without a traceback. Anything else
    propagates.
    """
    try:
        return EXIT_OK, function(*args, **kwargs)
    except ValueError as err:
        log.error("%s", err)
        return EXIT_BAD_INPUT, None
    except errors as err:
        log.error("%s", err)
        return EXIT_ERROR, None
