"""The model: values, names, errors, retry policy, codecs and signing (pure, no I/O).

Every other part of postroom (client, runtime, backends, server, CLI) builds on
these; nothing here imports from them.
"""
