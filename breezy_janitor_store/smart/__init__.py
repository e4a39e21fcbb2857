"""The bzr smart protocol (version 3) over one HTTP POST.

As breezy's ``bzr/smart/`` keeps its request classes apart from their
plumbing:

* ``verbs``: the store's policy for each verb (whether it writes, why it is
  refused, its body limit, whether it is a heavy stream) and the checks of
  its arguments;
* ``request``: ``StoreRequest``, the base of the store's request classes;
  ``overrides``: its own classes for some of breezy's verbs;
* ``registry``: every verb of breezy's (none of a plugin's) under its
  policy; ``failures``: what a client sees of a failure, what is logged;
* ``exchange``: one request's streamed exchange (body in, response out);
* ``leases``: a lock the store took for a client is held while it is used.

It knows requests by their bytes, never HTTP: admission (who may write,
body limits, the stream budget) is the web side's, handed in as a callback.
"""
