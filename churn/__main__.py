"""`python -m churn` runs the CLI, like the `churn` script."""

from churn.cli import main

main()
