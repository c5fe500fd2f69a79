"""`python -m reranker_eval`."""

import sys

from reranker_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
