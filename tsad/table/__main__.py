"""`python -m tsad.table`: the same as the console script tsad-table."""

from tsad.table.command import main

main()
