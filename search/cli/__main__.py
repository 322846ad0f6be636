"""`python -m search.cli` = `labeltune`."""

from search.cli import main

main()
