"""``python -m pytest_equivariance.cli``: the same as ``equiv-lint``."""

import sys

from pytest_equivariance.cli.equiv_lint import main

sys.exit(main())
