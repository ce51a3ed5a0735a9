"""`python -m user_svc` serves; `python -m user_svc migrate` only migrates."""

import os
import sys

from shop_common.serving import main
from user_svc.app import PROGRAM

if __name__ == "__main__":
    sys.exit(main(PROGRAM, sys.argv[1:], os.environ))
