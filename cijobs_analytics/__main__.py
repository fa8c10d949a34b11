"""``python -m cijobs_analytics`` runs the ``cijobs`` command."""

from .cli import main

if __name__ == "__main__":
    main()
