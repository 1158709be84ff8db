"""``python -m core.testing.botapi``: run the stand-in in the foreground."""

from core.testing.botapi import main

main()
