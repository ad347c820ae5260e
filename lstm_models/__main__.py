import sys

from lstm_models.cli import main

sys.exit(main())
