"""The bzr smart protocol (version 3) over one HTTP POST.

* ``exchange``: the verb registry and policies, the store's request
  overrides, error shaping and the streamed exchange;
* ``leases``: a lock the store took for a client is held while it is used.

It knows requests by their bytes, never HTTP: admission (who may write,
body limits, the stream budget) is the web side's, handed in as a callback.
"""
