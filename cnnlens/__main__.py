"""``python -m cnnlens ...``, also ``torchrun --nproc-per-node N -m cnnlens ...`` (every rank runs
the command; a process group started for it is closed at exit)."""

import sys

from cnnlens.cli import main

try:
    main()
finally:
    if "torch.distributed" in sys.modules:
        from cnnlens.distributed import shutdown

        shutdown()
