"""``python -m kerasnets``: the same as the ``kerasnets`` command."""

from kerasnets.cli import run

if __name__ == "__main__":
    run()
