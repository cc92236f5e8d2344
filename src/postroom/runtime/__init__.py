"""The runtime: the :class:`App` registry, the worker and its consumer loop, and
push delivery of HTTP subscriptions."""
