import sys

from raylatent.bench.main import main

sys.exit(main())
