"""Scoring: the metrics (:mod:`.metrics`), one method output scored against its scenario
(:mod:`.scoring`), the tidy tables (:mod:`.tables`), the ranks with intervals and ties
(:mod:`.ranking`) and the reference-output panel that validates every ranked metric
(:mod:`.validation`)."""
