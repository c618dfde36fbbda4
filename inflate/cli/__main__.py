"""`python -m inflate.cli`: the same as the `inflate` command."""

from .app import main

if __name__ == "__main__":
    main()
