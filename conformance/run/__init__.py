"""Running an audit: configuration, session, runner, isolation, journal, accounting.

:mod:`.config` resolves options; :mod:`.session` loads the model, builds
cases and items; :mod:`.runner` runs one item; :mod:`.isolation` runs model
calls in a worker process; :mod:`.journal` and :mod:`.accounting` keep every
item in the report; :mod:`.probe` finds the structure classes a model accepts.
"""
