"""``python -m benchmarks [load|multiprocess]``: see :mod:`benchmarks.run`,
:mod:`benchmarks.load` and :mod:`benchmarks.multiprocess`."""

import sys

if sys.argv[1:2] == ["load"]:
    from .load import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["multiprocess"]:
    from .multiprocess import main

    sys.exit(main(sys.argv[2:]))

from .run import main

sys.exit(main())
