"""`python -m order_svc` serves; `python -m order_svc migrate` only migrates."""

import os
import sys

from order_svc.app import PROGRAM
from shop_common.serving import main

if __name__ == "__main__":
    sys.exit(main(PROGRAM, sys.argv[1:], os.environ))
