"""`python -m inflate.cli` (what `torchrun -m inflate.cli train ...` runs)."""

from .app import main

if __name__ == "__main__":
    main()
