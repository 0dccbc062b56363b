"""The core: what every layer above shares.

Results and verdicts (:mod:`.result`), tolerances (:mod:`.tolerances`), model
tags (:mod:`.tags`), cases and their kinds (:mod:`.cases`), the model wrapper
that counts and validates calls (:mod:`.model`, :mod:`.boxing`) and the check
registry (:mod:`.registry`). It imports nothing else of the suite.
"""
