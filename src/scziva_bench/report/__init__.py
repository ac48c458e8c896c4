"""What a reader sees: the figures (:mod:`.plots`), the self-contained HTML report
(:mod:`.html`) and the text guards for user-given strings (:mod:`.textsafe`)."""
