"""The client layer: :class:`AsyncClient`, the only caller of a backend, and the
sync :class:`Client` facade over it."""
