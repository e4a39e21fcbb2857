"""``python -m benchmarks [load|multiprocess|forged|browse]``: see :mod:`benchmarks.run`,
:mod:`benchmarks.load`, :mod:`benchmarks.multiprocess` and
:mod:`benchmarks.forged`."""

import sys

if sys.argv[1:2] == ["load"]:
    from .load import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["forged"]:
    from .forged import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["browse"]:
    from .browse import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["multiprocess"]:
    from .multiprocess import main

    sys.exit(main(sys.argv[2:]))

from .run import main

sys.exit(main())
