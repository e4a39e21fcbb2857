"""``python -m benchmarks [load|multiprocess|forged|browse|browse-memory]``: see
:mod:`benchmarks.run`, :mod:`benchmarks.load`, :mod:`benchmarks.multiprocess`,
:mod:`benchmarks.forged`, :mod:`benchmarks.browse` and
:mod:`benchmarks.browse_memory`."""

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
if sys.argv[1:2] == ["browse-memory"]:
    from .browse_memory import main

    sys.exit(main(sys.argv[2:]))
if sys.argv[1:2] == ["multiprocess"]:
    from .multiprocess import main

    sys.exit(main(sys.argv[2:]))

from .run import main

sys.exit(main())
